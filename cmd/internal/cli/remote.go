package cli

import (
	"flag"
	"os"

	"github.com/gaffer-go/gaffer"
)

// Remote is how a command reaches gafferd: the global options, then the
// environment ($GAFFERD_ADDRESS, $GAFFER_API_KEY), then the settings saved
// for the endpoint, and the client made from them on first use.
type Remote struct {
	Endpoint, APIKey, CertFile, KeyFile, CACert string
	// Saved, when set, gives the settings saved for an endpoint ("key",
	// "certfile", "keyfile", "cacert"), used where the options and the
	// environment give none.
	Saved func(endpoint string) map[string]string

	client *gaffer.Client
}

// Flags declares the options on fs: the endpoint under each of names,
// then --api-key, --certfile, --keyfile and --cacert.
func (r *Remote) Flags(fs *flag.FlagSet, names ...string) {
	for _, n := range names {
		fs.StringVar(&r.Endpoint, n, "", "gafferd address")
	}
	fs.StringVar(&r.APIKey, "api-key", "", "API key")
	fs.StringVar(&r.CertFile, "certfile", "", "TLS client certificate")
	fs.StringVar(&r.KeyFile, "keyfile", "", "TLS client key")
	fs.StringVar(&r.CACert, "cacert", "", "CA certificates of gafferd")
}

// Address is the endpoint of gafferd: the option, else $GAFFERD_ADDRESS,
// else gaffer.DefaultEndpoint.
func (r *Remote) Address() string {
	return FirstNonEmpty(r.Endpoint, os.Getenv("GAFFERD_ADDRESS"), gaffer.DefaultEndpoint)
}

// Client returns the client of gafferd, made on first use.
func (r *Remote) Client() (*gaffer.Client, error) {
	if r.client != nil {
		return r.client, nil
	}
	ep := r.Address()
	var saved map[string]string
	if r.Saved != nil {
		saved = r.Saved(ep)
	}
	cl, err := gaffer.NewClient(ep, gaffer.ClientOptions{
		APIKey:   FirstNonEmpty(r.APIKey, os.Getenv("GAFFER_API_KEY"), saved["key"]),
		CertFile: FirstNonEmpty(r.CertFile, saved["certfile"]),
		KeyFile:  FirstNonEmpty(r.KeyFile, saved["keyfile"]),
		CACert:   FirstNonEmpty(r.CACert, saved["cacert"]),
	})
	if err != nil {
		return nil, err
	}
	r.client = cl
	return cl, nil
}

// Close closes the client, if one was made.
func (r *Remote) Close() {
	if r.client != nil {
		r.client.Close()
	}
}

// FirstNonEmpty returns the first of vs that is not "".
func FirstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
