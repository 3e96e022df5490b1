package gaffer

import "net/http"

// Temporary until channel.go and iochannel.go land.
func (s *Server) serveControlChannel(w http.ResponseWriter, r *http.Request) {
	writeError(w, Errorf(CodeUnavailable, 503, "not yet"))
}

func (s *Server) serveIOChannel(w http.ResponseWriter, r *http.Request, pid int, stream string) {
	writeError(w, Errorf(CodeUnavailable, 503, "not yet"))
}
