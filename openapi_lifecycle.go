package gaffer

// The schemas of GET /openapi.json that come from the job settings'
// table and the lifecycle (lifecycle.go): every setting a job config
// accepts, and the states a job and its processes report.

// oaJobSettings adds to the typed properties of a job config every other
// key of the job settings' table (jobsettings.go), with its doc and
// default, so that a new setting is documented by its row.
func oaJobSettings(props oaObj) oaObj {
	for _, row := range jobSettings {
		if _, ok := props[row.key]; ok || row.value.fromJSON == nil {
			continue
		}
		props[row.key] = oaObj{"description": row.doc + " (default: " + row.def + ")"}
	}
	return props
}

// oaProcessState is the lifecycle of one process (ProcessState).
func oaProcessState() oaObj {
	return oaObject(oaWithProcessState(oaObj{"pid": oaInt("internal pid")}), "pid", "state", "ready")
}

// oaWithProcessState adds the fields of a ProcessState to props.
func oaWithProcessState(props oaObj) oaObj {
	props["state"] = oaObj{"type": "string", "enum": []string{procStarting, procReady, procRunning, procReloading, procUnhealthy, procStopping}}
	props["ready"] = oaBool("its ready condition held (or it has none)")
	props["health"] = oaObj{"type": "string", "enum": []string{healthStarting, healthHealthy, healthFailing, healthUnhealthy},
		"description": "absent without a health setting"}
	props["health_error"] = oaStr("why the last health check failed")
	props["status"] = oaStr("the last STATUS= line it sent (sd_notify)")
	props["errno"] = oaInt("the last ERRNO= it sent (sd_notify)")
	props["main_pid"] = oaInt("the MAINPID= it sent (sd_notify), a pid of its tree")
	return props
}

// oaRestarted is the answer of POST /jobs/{sid}/{name}/restart.
func oaRestarted() oaObj {
	return oaObject(oaObj{"ok": oaObj{"type": "boolean", "const": true},
		"replaced": oaInt("with rolling=1: the processes replaced, one at a time")}, "ok")
}
