package client

import (
	"context"
	"io"
	"net/url"
	"strconv"

	"github.com/weftcloud/weft/api"
)

// UploadImageFile stores one file of an image, r yielding exactly f.Size
// bytes that hash to f.Digest. A file the controller already has is not sent
// again, so importing an image that shares files with another is quick.
func (c *Client) UploadImageFile(ctx context.Context, f api.ImageFile, r io.Reader) (sent bool, err error) {
	_, err = c.Do(ctx, "HEAD", imageFilePath(f.Digest), nil, nil, nil)
	if err == nil {
		return false, nil
	}
	if !IsNotFound(err) {
		return false, err
	}
	q := url.Values{"size": {strconv.FormatInt(f.Size, 10)}}
	_, err = c.Do(ctx, "PUT", imageFilePath(f.Digest), q, r, nil)
	return err == nil, err
}

// ImageFile opens a stored image file. The caller closes it.
func (c *Client) ImageFile(ctx context.Context, digest string) (io.ReadCloser, error) {
	resp, err := c.Stream(ctx, "GET", imageFilePath(digest), nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// CreateImage records an image whose files were uploaded.
func (c *Client) CreateImage(ctx context.Context, img api.Image) (api.Image, error) {
	var out api.Image
	_, err := c.Do(ctx, "POST", "/v1/images", nil, img, &out)
	return out, err
}

// Images lists the images.
func (c *Client) Images(ctx context.Context) ([]api.Image, error) {
	return listAll[api.Image](ctx, c, "/v1/images", nil)
}

// Image returns one image.
func (c *Client) Image(ctx context.Context, name string) (api.Image, error) {
	var img api.Image
	_, err := c.Do(ctx, "GET", "/v1/images/"+url.PathEscape(name), nil, nil, &img)
	return img, err
}

// ImageByDigest returns the image of that digest that one of the calling
// node's instances runs (nodes fetch images by the digest they were
// deployed with).
func (c *Client) ImageByDigest(ctx context.Context, digest string) (api.Image, error) {
	var img api.Image
	_, err := c.Do(ctx, "GET", "/v1/imagedigests/"+url.PathEscape(digest), nil, nil, &img)
	return img, err
}

// DeleteImage deletes an image no deployment uses.
func (c *Client) DeleteImage(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/images/"+url.PathEscape(name), nil, nil, nil)
	return err
}

func imageFilePath(digest string) string { return "/v1/imagefiles/" + url.PathEscape(digest) }
