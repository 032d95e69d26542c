package sandbox

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
)

// DefaultStoreDir is the directory of the store that [OpenStore] opens for
// an empty dir.
const DefaultStoreDir = "/var/lib/sandboxkit/images"

// DefaultMaxLayerBytes is the most one layer may unpack to unless
// [WithMaxLayerSize] says otherwise: 16 GiB. It stops decompression bombs.
const DefaultMaxLayerBytes = 16 << 30

// maxConfigBytes caps an image's configuration (and manifest) blob: real
// ones are a few KiB.
const maxConfigBytes = 4 << 20

// Store is a content-addressed store of OCI images on the host: each layer
// is unpacked once, under its DiffID, and shared by every image that has
// it. Several processes, and goroutines, may use one store at once: file
// locks keep it consistent (one unpack of a layer however many load it,
// and Prune never removes a layer a running sandbox stacks). A Store keeps,
// for each image of several layers it ran, the read-only overlay of its
// layers, so that later runs cost what a [Dir] root's does; [Store.Close]
// releases them.
//
// Layout of the directory: layers/<hex> (an unpacked layer, by DiffID),
// images/<hex>.json (an image, by config digest), refs/ (names to image
// IDs), locks/ and tmp/ (unpacks in progress; what a killed process left
// there is removed by the next OpenStore or Prune).
type Store struct {
	dir string

	mu     sync.Mutex
	stacks map[string]stack // by image ID; guarded by mu
}

// stack is an image's read-only overlay of its layers, a detached mount
// kept for its later runs, and the (device, inode) of each of its layer
// directories, topmost first.
type stack struct {
	mnt    int
	layers [][2]uint64
}

// Dir returns the store's directory.
func (st *Store) Dir() string { return st.dir }

// Progress is one report of a pull or load about one layer.
type Progress struct {
	Layer  string // the layer's digest, "sha256:<hex>"
	Done   int64  // bytes of the blob read so far
	Total  int64  // bytes of the blob; 0 when not known (a docker save tarball)
	Cached bool   // the layer was in the store already: nothing is read
}

// ImageOption sets how [Store.Load] and [Store.Pull] get an image.
type ImageOption func(*imageOptions)

type imageOptions struct {
	platform     string // "os/arch[/variant]"
	progress     func(Progress)
	user, pass   string
	dockerConfig string // path of a Docker config.json; "" with useConfig: the default
	auth         authKind
	maxLayer     int64
	devices      bool
}

type authKind int

const (
	authDefault   authKind = iota // the Docker config of the caller, else anonymous
	authAnonymous                 // no credentials
	authBasic                     // user and pass
	authConfig                    // the Docker config file at dockerConfig
)

func newImageOptions(opts []ImageOption) *imageOptions {
	o := &imageOptions{platform: "linux/" + runtime.GOARCH, maxLayer: DefaultMaxLayerBytes}
	for _, opt := range opts {
		if opt != nil {
			opt(o)
		}
	}
	return o
}

// WithPlatform chooses the image for platform, "os/arch" or
// "os/arch/variant" (such as "linux/arm64/v8"), in a multi-platform index.
// The default is linux and the host's architecture. When the index has no
// such image, the error is a [*PlatformError] that lists those it has.
func WithPlatform(platform string) ImageOption {
	return func(o *imageOptions) { o.platform = platform }
}

// WithProgress has fn called as each layer's blob is read: about every
// MiB, then once when it is read whole and checked (Done equal to Total),
// or once, with Cached, for a layer the store has already. fn is called
// from the goroutines that unpack layers, possibly several at once.
func WithProgress(fn func(Progress)) ImageOption {
	return func(o *imageOptions) { o.progress = fn }
}

// WithBasicAuth has Pull log in to the registry with username and password.
func WithBasicAuth(username, password string) ImageOption {
	return func(o *imageOptions) { o.auth, o.user, o.pass = authBasic, username, password }
}

// WithDockerConfig has Pull use the credentials for the registry in the
// Docker config file at path (a config.json, with "auths" or credential
// helpers). By default Pull uses the caller's own Docker config
// ($DOCKER_CONFIG or ~/.docker/config.json) when there is one, and no
// credentials otherwise.
func WithDockerConfig(path string) ImageOption {
	return func(o *imageOptions) { o.auth, o.dockerConfig = authConfig, path }
}

// WithAnonymous has Pull send no credentials at all.
func WithAnonymous() ImageOption {
	return func(o *imageOptions) { o.auth = authAnonymous }
}

// WithMaxLayerSize caps what one layer may unpack to, in bytes (file
// contents plus 512 bytes an entry); a layer that holds more is refused.
// The default is [DefaultMaxLayerBytes].
func WithMaxLayerSize(bytes int64) ImageOption {
	return func(o *imageOptions) {
		if bytes > 0 {
			o.maxLayer = bytes
		}
	}
}

// WithDevices lets the image's layers hold character and block devices,
// which are refused by default. The sandbox's own overlay is mounted nodev
// either way.
func WithDevices() ImageOption {
	return func(o *imageOptions) { o.devices = true }
}

// PlatformError is returned when an image index has no image for the
// platform asked for.
type PlatformError struct {
	Ref       string   // the image
	Want      string   // the platform asked for
	Available []string // the platforms the index has
}

// Error names the platform and those available.
func (e *PlatformError) Error() string {
	return fmt.Sprintf("image %s has no %s image; it has: %s", e.Ref, e.Want, strings.Join(e.Available, ", "))
}
