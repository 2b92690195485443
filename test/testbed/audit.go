package testbed

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// auditPolicy makes kube-apiserver log the metadata (who, verb, resource, decision) of
// every request by RestrictedUser, the DaemonSet's ServiceAccount, and nothing else:
// what Switchyard asks the API server for is then a fact a test can read
// (Cluster.AuditEvents), not an inference from its code. Other users are not logged,
// so the log stays small even under the benchmarks' load.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: ["` + RestrictedUser + `"]
- level: None
`

// auditPolicyPath and auditLogPath are kube-apiserver's --audit-policy-file and
// --audit-log-path; a restarted apiserver appends to the same log.
func (c *Cluster) auditPolicyPath() string { return filepath.Join(c.Dir, "audit-policy.yaml") }
func (c *Cluster) auditLogPath() string    { return filepath.Join(c.Dir, "audit.log") }

func (c *Cluster) writeAuditPolicy() error {
	return os.WriteFile(c.auditPolicyPath(), []byte(auditPolicy), 0o600)
}

// AuditEvent is one completed request in kube-apiserver's audit log (level Metadata).
type AuditEvent struct {
	User, UserAgent, Verb string
	// Group is the API group ("" for the core group), Resource and Subresource the
	// resource; Namespace and Name are empty for cluster-wide requests.
	Group, Resource, Subresource, Namespace, Name string
	// RequestURI is the request's path and query; NonResourceURL is set to it
	// instead of Resource for requests such as /api.
	RequestURI, NonResourceURL string
	// Decision is the authorizer's "allow" or "forbid".
	Decision string
	// Code is the HTTP status of the response.
	Code int
}

// auditLine is the part of an audit.k8s.io/v1 Event that AuditEvents reads.
type auditLine struct {
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	UserAgent string `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Annotations map[string]string `json:"annotations"`
}

// AuditEvents returns the requests RestrictedUser made so far, in order. A watch that
// was served appears twice: when its response started and when it ended.
func (c *Cluster) AuditEvents() ([]AuditEvent, error) {
	f, err := os.Open(c.auditLogPath())
	if err != nil {
		return nil, fmt.Errorf("reading the audit log: %w", err)
	}
	defer f.Close()
	var events []AuditEvent
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for scanner.Scan() {
		var line auditLine
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("audit log %s: %w", c.auditLogPath(), err)
		}
		if line.Stage != "ResponseComplete" && line.Stage != "ResponseStarted" && line.Stage != "Panic" {
			continue
		}
		event := AuditEvent{
			User: line.User.Username, UserAgent: line.UserAgent, Verb: line.Verb,
			Decision:   line.Annotations["authorization.k8s.io/decision"],
			RequestURI: line.RequestURI,
		}
		if line.ResponseStatus != nil {
			event.Code = line.ResponseStatus.Code
		}
		if ref := line.ObjectRef; ref != nil {
			event.Group, event.Resource, event.Subresource = ref.APIGroup, ref.Resource, ref.Subresource
			event.Namespace, event.Name = ref.Namespace, ref.Name
		} else {
			event.NonResourceURL = line.RequestURI
		}
		events = append(events, event)
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("audit log %s: %w", c.auditLogPath(), err)
	}
	return events, nil
}
