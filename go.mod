module github.com/weftcloud/weft

go 1.25
