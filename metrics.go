package gaffer

// metricsRoutes registers GET /metrics (Prometheus text format).
func (s *Server) metricsRoutes() {}
