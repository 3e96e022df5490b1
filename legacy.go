package gaffer

// legacyRoutes registers the 0.4 API (/processes, /status, /groups,
// /stats) that gafferctl and the seed's pages use.
func (s *Server) legacyRoutes() {}
