package gaffer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The /auth, /keys and /users routes (reference §2.4.5–§2.4.8), and the
// 0.4 routes /processes, /status, /groups and /stats (gafferctl-0.4 §2).

// Authenticate exchanges a username and password for the user's API key
// (GET /auth with HTTP Basic credentials). The key is "" when the user has
// none.
func (c *Client) Authenticate(ctx context.Context, username, password string) (string, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/auth", nil, nil)
	if err != nil {
		return "", err
	}
	req.Header.Del("X-Api-Key")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(username+":"+password)))
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
		req = req.WithContext(ctx)
	}
	resp, err := c.send(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return "", clDecodeError(resp)
	}
	var v struct {
		APIKey *string `json:"api_key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	if v.APIKey == nil {
		return "", nil
	}
	return *v.APIKey, nil
}

// Keys lists the API keys (GET /keys, admin).
func (c *Client) Keys(ctx context.Context) ([]string, error) {
	var v struct{ Keys []string }
	err := c.do(ctx, http.MethodGet, "/keys", nil, nil, &v)
	return v.Keys, err
}

// KeysDetails lists the API keys with their labels and permissions
// (GET /keys?include_keys=true, admin).
func (c *Client) KeysDetails(ctx context.Context) ([]Key, error) {
	var v struct{ Keys []Key }
	err := c.do(ctx, http.MethodGet, "/keys", url.Values{"include_keys": {"true"}}, nil, &v)
	return v.Keys, err
}

// CreateKey creates an API key with the given permissions (POST /keys)
// and returns it. parent, when set, makes it a sub-key of that key.
func (c *Client) CreateKey(ctx context.Context, label string, perms Permissions, parent string) (string, error) {
	body := map[string]any{"label": label, "permissions": perms}
	if parent != "" {
		body["parent"] = parent
	}
	var v struct {
		APIKey string `json:"api_key"`
	}
	err := c.do(ctx, http.MethodPost, "/keys", nil, body, &v)
	return v.APIKey, err
}

// GetKey returns a key's label and permissions (GET /keys/<key>).
func (c *Client) GetKey(ctx context.Context, key string) (Key, error) {
	var v Key
	err := c.do(ctx, http.MethodGet, clPath("keys", key), nil, nil, &v)
	return v, err
}

// KeyExists reports whether a key exists (HEAD /keys/<key>).
func (c *Client) KeyExists(ctx context.Context, key string) (bool, error) {
	return c.head(ctx, clPath("keys", key))
}

// DeleteKey deletes a key and its sub-keys (DELETE /keys/<key>).
func (c *Client) DeleteKey(ctx context.Context, key string) error {
	return c.do(ctx, http.MethodDelete, clPath("keys", key), nil, nil, nil)
}

// Users lists the user names (GET /users, admin).
func (c *Client) Users(ctx context.Context) ([]string, error) {
	var v struct{ Users []string }
	err := c.do(ctx, http.MethodGet, "/users", nil, nil, &v)
	return v.Users, err
}

// UsersDetails lists the users with their types and keys
// (GET /users?include_user=true, admin).
func (c *Client) UsersDetails(ctx context.Context) ([]User, error) {
	var v struct{ Users []User }
	err := c.do(ctx, http.MethodGet, "/users", url.Values{"include_user": {"true"}}, nil, &v)
	return v.Users, err
}

// CreateUser creates a user (POST /users). userType is UserTypeUser or
// UserTypeApp; key links the user to an API key ("" for none).
func (c *Client) CreateUser(ctx context.Context, username, password string, userType int, key string) error {
	body := map[string]any{"username": username, "password": password, "user_type": userType}
	if key != "" {
		body["key"] = key
	}
	return c.do(ctx, http.MethodPost, "/users", nil, body, nil)
}

// GetUser returns a user (GET /users/<username>).
func (c *Client) GetUser(ctx context.Context, username string) (User, error) {
	var v User
	err := c.do(ctx, http.MethodGet, clPath("users", username), nil, nil, &v)
	return v, err
}

// UserExists reports whether a user exists (HEAD /users/<username>).
func (c *Client) UserExists(ctx context.Context, username string) (bool, error) {
	return c.head(ctx, clPath("users", username))
}

// UpdateUser replaces a user's password, type and key
// (PUT /users/<username>); key "" removes the user's key.
func (c *Client) UpdateUser(ctx context.Context, username, password string, userType int, key string) error {
	body := map[string]any{"password": password, "user_type": userType, "key": nil}
	if key != "" {
		body["key"] = key
	}
	return c.do(ctx, http.MethodPut, clPath("users", username), nil, body, nil)
}

// DeleteUser deletes a user (DELETE /users/<username>).
func (c *Client) DeleteUser(ctx context.Context, username string) error {
	return c.do(ctx, http.MethodDelete, clPath("users", username), nil, nil, nil)
}

// SetUserPassword changes a user's password (PUT /users/<u>/password).
func (c *Client) SetUserPassword(ctx context.Context, username, password string) error {
	return c.do(ctx, http.MethodPut, clPath("users", username, "password"), nil, map[string]any{"password": password}, nil)
}

// SetUserKey links a user to an API key (PUT /users/<u>/key).
func (c *Client) SetUserKey(ctx context.Context, username, key string) error {
	return c.do(ctx, http.MethodPut, clPath("users", username, "key"), nil, map[string]any{"key": key}, nil)
}

// LegacyStatus is the answer of the 0.4 route GET /status/<name>.
type LegacyStatus struct {
	Active       bool `json:"active"`
	Running      int  `json:"running"`
	MaxProcesses int  `json:"max_processes"`
}

// LegacyName converts a full job name to the 0.4 name: "default.web" is
// "web", "app.web" is "app:web" (gafferctl-0.4 §4.1).
func LegacyName(full string) string {
	sid, name := SplitName(full)
	if sid == "default" {
		return name
	}
	return sid + ":" + name
}

// FromLegacyName converts a 0.4 name to a full job name: "web" is
// "default.web", "app:web" is "app.web".
func FromLegacyName(name string) string {
	if g, n, ok := strings.Cut(name, ":"); ok {
		return g + "." + n
	}
	return "default." + name
}

// LegacyProcesses lists the 0.4 template names (GET /processes).
func (c *Client) LegacyProcesses(ctx context.Context) ([]string, error) {
	var v []string
	err := c.do(ctx, http.MethodGet, "/processes", nil, nil, &v)
	return v, err
}

// LegacyRunning lists the running pids (GET /processes?running=true).
func (c *Client) LegacyRunning(ctx context.Context) ([]int, error) {
	var v []int
	err := c.do(ctx, http.MethodGet, "/processes", url.Values{"running": {"true"}}, nil, &v)
	return v, err
}

// LegacyAddProcess creates a template from a 0.4 config object
// ({"name", "cmd", settings…, "start"}) (POST /processes).
func (c *Client) LegacyAddProcess(ctx context.Context, cfg map[string]any) error {
	return c.do(ctx, http.MethodPost, "/processes", nil, cfg, nil)
}

// LegacyGetProcess returns a template's config, or the config of the
// template of a pid when name is all digits (GET /processes/<name>).
func (c *Client) LegacyGetProcess(ctx context.Context, name string) (map[string]any, error) {
	var v map[string]any
	err := c.do(ctx, http.MethodGet, clPath("processes", name), nil, nil, &v)
	return v, err
}

// LegacyUpdateProcess replaces a template's config (PUT /processes/<name>).
func (c *Client) LegacyUpdateProcess(ctx context.Context, name string, cfg map[string]any) error {
	return c.do(ctx, http.MethodPut, clPath("processes", name), nil, cfg, nil)
}

// LegacyDelProcess removes a template, or stops one process when name is
// a pid (DELETE /processes/<name>).
func (c *Client) LegacyDelProcess(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, clPath("processes", name), nil, nil, nil)
}

// LegacyPids lists the pids of a template (GET /processes/<name>/_pids).
func (c *Client) LegacyPids(ctx context.Context, name string) ([]int, error) {
	var v struct{ Pids []int }
	err := c.do(ctx, http.MethodGet, clPath("processes", name, "_pids"), nil, nil, &v)
	return v.Pids, err
}

// LegacyAction runs POST /processes/<name>/<action>[/<arg>] (action is
// "_start", "_stop", "_restart", "_add", "_sub" or "_signal") and returns
// the answer ({"ok": true}, plus "numprocesses" for _add and _sub).
func (c *Client) LegacyAction(ctx context.Context, name, action, arg string) (map[string]any, error) {
	segs := []string{"processes", name, action}
	if arg != "" {
		segs = append(segs, arg)
	}
	var v map[string]any
	err := c.do(ctx, http.MethodPost, clPath(segs...), nil, nil, &v)
	return v, err
}

// LegacyScale adds (n > 0) or removes (n < 0) processes of a template
// (_add / _sub) and returns the new numprocesses.
func (c *Client) LegacyScale(ctx context.Context, name string, n int) (int, error) {
	action := "_add"
	if n < 0 {
		action, n = "_sub", -n
	}
	v, err := c.LegacyAction(ctx, name, action, strconv.Itoa(n))
	if err != nil {
		return 0, err
	}
	f, _ := v["numprocesses"].(float64)
	return int(f), nil
}

// LegacyStatus returns a template's status (GET /status/<name>).
func (c *Client) LegacyStatus(ctx context.Context, name string) (LegacyStatus, error) {
	var v LegacyStatus
	err := c.do(ctx, http.MethodGet, clPath("status", name), nil, nil, &v)
	return v, err
}

// LegacyGroups lists the 0.4 groups (GET /groups).
func (c *Client) LegacyGroups(ctx context.Context) ([]string, error) {
	var v []string
	err := c.do(ctx, http.MethodGet, "/groups", nil, nil, &v)
	return v, err
}

// LegacyGroup lists the templates of a group (GET /groups/<g>).
func (c *Client) LegacyGroup(ctx context.Context, group string) ([]string, error) {
	var v []string
	err := c.do(ctx, http.MethodGet, clPath("groups", group), nil, nil, &v)
	return v, err
}

// LegacyGroupAction starts, stops or restarts every template of a group
// (action "_start", "_stop" or "_restart").
func (c *Client) LegacyGroupAction(ctx context.Context, group, action string) error {
	return c.do(ctx, http.MethodPost, clPath("groups", group, action), nil, nil, nil)
}

// LegacyDelGroup removes a group and its templates (DELETE /groups/<g>).
func (c *Client) LegacyDelGroup(ctx context.Context, group string) error {
	return c.do(ctx, http.MethodDelete, clPath("groups", group), nil, nil, nil)
}

// LegacyStats returns the raw JSON of GET /stats (name "") or
// GET /stats/<name> (the template stats objects of gafferctl-0.4 §2.7).
func (c *Client) LegacyStats(ctx context.Context, name string) (json.RawMessage, error) {
	p := "/stats"
	if name != "" {
		p = clPath("stats", name)
	}
	var raw []byte
	err := c.do(ctx, http.MethodGet, p, nil, nil, &raw)
	return json.RawMessage(raw), err
}
