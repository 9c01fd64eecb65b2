package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

// memcheck fills most of the guest's memory with a pattern and checks it
// for ever, to catch a live migration that loses or tears guest memory.
//
// Every word of page p holds a value computed from p, the word's index and
// the page's generation, which the checker keeps in its own array. Each
// round it rewrites the next few pages with their next generation (a steady
// stream of dirty pages for the migration to track), then reads every page
// back and compares it with what it wrote last. A page that went back to
// an older generation is a write the migration lost; any other difference
// is memory torn or overwritten. Each mismatch is printed on stdout (the
// serial console, for a workload) and counted; after each round the
// counts go to the status file as "rounds R errors E", renamed into place.
func memcheck(args []string) int {
	fs := flag.NewFlagSet("memcheck", flag.ContinueOnError)
	mib := fs.Int("mib", 128, "MiB of memory to fill and check")
	rate := fs.Int("rate", 16, "MiB rewritten per second")
	status := fs.String("status", "/tmp/memcheck", "file that gets the counts after each round")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	const pageWords = 4096 / 8
	pages := *mib << 20 / 4096
	mem := make([]uint64, pages*pageWords)
	gen := make([]uint32, pages)
	for p := range pages {
		fill(mem[p*pageWords:(p+1)*pageWords], p, gen[p])
	}
	fmt.Printf("memcheck: %d MiB filled, rewriting %d MiB/s\n", *mib, *rate)

	const round = 100 * time.Millisecond
	perRound := max(1, *rate<<20/4096/int(time.Second/round))
	next, errors := 0, 0
	for r := 1; ; r++ {
		start := time.Now()
		for range perRound {
			gen[next]++
			fill(mem[next*pageWords:(next+1)*pageWords], next, gen[next])
			next = (next + 1) % pages
		}
		for p := range pages {
			page := mem[p*pageWords : (p+1)*pageWords]
			if w, ok := check(page, p, gen[p]); !ok {
				errors++
				fmt.Printf("memcheck: MISMATCH page %d word %d: %#x, want %#x (generation %d; the page holds generation %d of page %d)\n",
					p, w, page[w], word(p, w, gen[p]), gen[p], page[0]>>32, page[0]&0xffffffff)
				fill(page, p, gen[p]) // count each damage once
			}
		}
		tmp := *status + ".new"
		if err := os.WriteFile(tmp, []byte(fmt.Sprintf("rounds %d errors %d\n", r, errors)), 0o644); err == nil {
			os.Rename(tmp, *status)
		}
		time.Sleep(round - time.Since(start))
	}
}

// word is the value of word w of page p at generation g. Word 0 names the
// generation and the page, so that a mismatch says where the content came
// from.
func word(p, w int, g uint32) uint64 {
	if w == 0 {
		return uint64(g)<<32 | uint64(p)
	}
	return (uint64(p)<<20|uint64(w))*0x9e3779b97f4a7c15 ^ uint64(g)*0xbf58476d1ce4e5b9
}

func fill(page []uint64, p int, g uint32) {
	for w := range page {
		page[w] = word(p, w, g)
	}
}

// check returns the first word of page that differs from generation g.
func check(page []uint64, p int, g uint32) (int, bool) {
	for w := range page {
		if page[w] != word(p, w, g) {
			return w, false
		}
	}
	return 0, true
}
