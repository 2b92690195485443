package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/test/testbed"
)

// permission is one verb on one resource ("group/resource" or "resource/subresource"
// in the core group), whatever the namespace: the ClusterRole is bound cluster-wide.
type permission struct{ Group, Resource, Verb string }

func (p permission) String() string {
	if p.Group == "" {
		return p.Verb + " " + p.Resource
	}
	return p.Verb + " " + p.Resource + "." + p.Group
}

// daemonNeeds is every API call the daemon makes (pkg/controller), independent of
// rbac.yaml, so that a grant added to the manifest shows as a difference:
var daemonNeeds = []permission{
	// The informers (controller.Run): Services, EndpointSlices, and its own Node
	// through a metadata.name field selector, which RBAC cannot narrow to one Node.
	// list is what an informer does first; with an apiserver that supports it,
	// client-go does the list as a watch with sendInitialEvents=true instead.
	{"", "services", "list"}, {"", "services", "watch"},
	{"discovery.k8s.io", "endpointslices", "list"}, {"discovery.k8s.io", "endpointslices", "watch"},
	{"", "nodes", "list"}, {"", "nodes", "watch"},
	// Warning Events on objects it cannot fully program (handlers.go), through
	// client-go's record package: create, then patch when the same Event repeats.
	{"", "events", "create"}, {"", "events", "patch"},
	// nftables mode only (pkg/controller/nftables.go): the ServiceCIDR objects, for
	// the drop of traffic to unallocated cluster IPs; testNFTablesAPICalls runs
	// that mode so the audit log has them.
	{"networking.k8s.io", "servicecidrs", "list"}, {"networking.k8s.io", "servicecidrs", "watch"},
}

// everyServiceAccount is what kube-apiserver's bootstrap policy (v1.37) grants every
// service account whatever its bindings: asking about one's own rights
// (system:basic-user, bound to system:authenticated) and reading the public
// ClusterTrustBundles (system:cluster-trust-bundle-discovery, bound to
// system:serviceaccounts). It is not the manifests' to take away.
var everyServiceAccount = []permission{
	{"authorization.k8s.io", "selfsubjectaccessreviews", "create"},
	{"authorization.k8s.io", "selfsubjectrulesreviews", "create"},
	{"authentication.k8s.io", "selfsubjectreviews", "create"},
	{"certificates.k8s.io", "clustertrustbundles", "get"},
	{"certificates.k8s.io", "clustertrustbundles", "list"},
	{"certificates.k8s.io", "clustertrustbundles", "watch"},
}

// testLeastPrivilege proves that manifests/deploy/rbac.yaml gives the DaemonSet's
// ServiceAccount what the daemon uses and nothing else, in three steps:
//
//  1. It makes the daemons report an invalid object twice, so that they create an
//     Event and then patch it (the only writes they ever make).
//  2. Every permission the ClusterRole grants was used by a Switchyard daemon of this
//     suite, and the daemons asked for nothing the role does not grant: the rules are
//     compared with kube-apiserver's audit log of every request the ServiceAccount
//     made with Switchyard's user agent (the testbed logs them, testbed/audit.go).
//  3. The apiserver is asked (SelfSubjectAccessReview, as that identity) about every
//     verb on every resource it serves, subresources included (pods/exec,
//     serviceaccounts/token, nodes/proxy...), in the kube-system namespace and
//     cluster-wide, plus impersonation, RBAC escalate/bind and certificate approval:
//     what is allowed must be exactly daemonNeeds plus what the bootstrap policy
//     gives every service account.
//
// Mutation-checked: adding "get" to the services/nodes rule of rbac.yaml fails step 2
// ("grants permissions no daemon of this suite used: get services, get nodes") and
// step 3; adding a rule "list configmaps" fails steps 2 and 3; removing "patch" from
// the events rule fails step 1 (the Event's count never reaches 2).
func (s *suite) testLeastPrivilege(t *testing.T) {
	ctx := t.Context()
	granted, err := rbacManifestPermissions()
	if err != nil {
		t.Fatal(err)
	}
	s.provokeEvents(t)

	t.Run("every granted permission is used, nothing else is asked for", func(t *testing.T) {
		events, err := s.cluster.AuditEvents()
		if err != nil {
			t.Fatal(err)
		}
		used := map[permission]bool{}
		for _, e := range events {
			if e.User != s.cluster.RestrictedUser || e.UserAgent != "switchyard" {
				continue // the tests' own requests as this identity
			}
			if e.Resource == "" {
				t.Errorf("the daemon requested %s %s", e.Verb, e.NonResourceURL)
				continue
			}
			resource := e.Resource
			if e.Subresource != "" {
				resource += "/" + e.Subresource
			}
			p := permission{e.Group, resource, e.Verb}
			if !slices.Contains(granted, p) {
				t.Errorf("the daemon asked to %s (%s, HTTP %d): rbac.yaml does not grant it", p, e.Decision, e.Code)
			}
			if e.Decision == "allow" {
				used[p] = true
				// client-go's informers list through a watch with
				// sendInitialEvents=true (WatchListClient, on by default since
				// client-go v0.35) where the apiserver supports it, and fall back
				// to a plain list where it does not (an older or differently
				// configured apiserver), so list stays granted: such a watch
				// counts as the list it replaces.
				if e.Verb == "watch" && strings.Contains(e.RequestURI, "sendInitialEvents=true") {
					used[permission{e.Group, resource, "list"}] = true
				}
			}
		}
		var unused []string
		for _, p := range granted {
			if !used[p] {
				unused = append(unused, p.String())
			}
		}
		if len(unused) > 0 {
			t.Errorf("rbac.yaml grants permissions no daemon of this suite used: %s", strings.Join(unused, ", "))
		}
		for _, p := range daemonNeeds {
			if !used[p] {
				t.Errorf("the daemons never used %s, which daemonNeeds lists: update the list or find what stopped using it", p)
			}
		}
		t.Logf("the daemons used %d permissions (a streaming list counted as list), all granted: %v", len(used), slices.Sorted(func(yield func(string) bool) {
			for p := range used {
				if !yield(p.String()) {
					return
				}
			}
		}))
	})

	t.Run("everything else is refused", func(t *testing.T) {
		restricted, err := s.cluster.ClientsetFor(s.cluster.RestrictedKubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		checks, err := s.accessChecks()
		if err != nil {
			t.Fatal(err)
		}
		allowed := map[permission]bool{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		work := make(chan accessCheck)
		errs := make(chan error, len(checks))
		for range 8 {
			wg.Go(func() {
				for c := range work {
					review, err := restricted.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
						&authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &c.attrs}}, metav1.CreateOptions{})
					if err != nil {
						errs <- fmt.Errorf("access review %+v: %w", c.attrs, err)
						continue
					}
					if review.Status.Allowed {
						mu.Lock()
						allowed[c.permission] = true
						mu.Unlock()
					}
				}
			})
		}
		for _, c := range checks {
			work <- c
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		want := map[permission]bool{}
		for _, p := range append(slices.Clone(daemonNeeds), everyServiceAccount...) {
			want[p] = true
		}
		if diff := cmp.Diff(want, allowed); diff != "" {
			t.Errorf("permissions of %s (-want +allowed):\n%s", s.cluster.RestrictedUser, diff)
		}
		t.Logf("%d access reviews; allowed: %d permissions", len(checks), len(allowed))
	})
}

// rbacManifestPermissions reads manifests/deploy/rbac.yaml: it must bind one
// ClusterRole to the ServiceAccount kube-system/switchyard, with plain rules (no
// wildcards, resource names or non-resource URLs), which are returned expanded.
func rbacManifestPermissions() ([]permission, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(root, "manifests", "deploy", "rbac.yaml"))
	if err != nil {
		return nil, err
	}
	var roles []rbacv1.ClusterRole
	var bindings []rbacv1.ClusterRoleBinding
	for doc := range strings.SplitSeq(string(data), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return nil, err
		}
		switch meta.Kind {
		case "ServiceAccount":
		case "ClusterRole":
			var role rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict([]byte(doc), &role); err != nil {
				return nil, err
			}
			roles = append(roles, role)
		case "ClusterRoleBinding":
			var binding rbacv1.ClusterRoleBinding
			if err := yaml.UnmarshalStrict([]byte(doc), &binding); err != nil {
				return nil, err
			}
			bindings = append(bindings, binding)
		default:
			return nil, fmt.Errorf("rbac.yaml: unexpected kind %q", meta.Kind)
		}
	}
	if len(roles) != 1 || len(bindings) != 1 || bindings[0].RoleRef.Name != roles[0].Name ||
		!slices.Equal(bindings[0].Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "switchyard", Namespace: "kube-system"}}) {
		return nil, fmt.Errorf("rbac.yaml: want one ClusterRole bound to ServiceAccount kube-system/switchyard, got roles %d, bindings %+v", len(roles), bindings)
	}
	var granted []permission
	for _, rule := range roles[0].Rules {
		if len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 {
			return nil, fmt.Errorf("rbac.yaml: rule %+v: resource names and non-resource URLs are not expected", rule)
		}
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				for _, verb := range rule.Verbs {
					if group == "*" || resource == "*" || verb == "*" {
						return nil, fmt.Errorf("rbac.yaml: rule %+v has a wildcard", rule)
					}
					granted = append(granted, permission{group, resource, verb})
				}
			}
		}
	}
	return granted, nil
}

// provokeEvents creates an EndpointSlice without its kubernetes.io/service-name label,
// which every Switchyard reports with a Warning Event, then fixes and breaks it again so
// that the same Event repeats and the daemons patch its count; it waits for both.
func (s *suite) provokeEvents(t *testing.T) {
	ctx := t.Context()
	sliceClient := s.cluster.Clientset.DiscoveryV1().EndpointSlices(namespace)
	slice, err := sliceClient.Create(ctx, &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "no-service-label", Namespace: namespace},
		AddressType: discovery.AddressTypeIPv4,
		Endpoints:   []discovery.Endpoint{{Addresses: []string{"10.244.1.250"}}},
		Ports:       []discovery.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sliceClient.Delete(context.Background(), slice.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting %s: %v", slice.Name, err)
		}
	}()
	waitCount := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			list, err := s.cluster.Clientset.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
				FieldSelector: "involvedObject.name=" + slice.Name + ",reason=" + endpoints.ReasonNoServiceLabel})
			if err != nil {
				t.Fatal(err)
			}
			for _, event := range list.Items {
				if event.Count >= want && event.Source.Component == "switchyard" && event.Type == v1.EventTypeWarning {
					return
				}
			}
			if time.Now().After(deadline) {
				var seen []string
				for _, event := range list.Items {
					seen = append(seen, fmt.Sprintf("%s from %s/%s count %d", event.Type, event.Source.Component, event.Source.Host, event.Count))
				}
				t.Fatalf("no %s Event with count %d on %s after 20s; seen: %v", endpoints.ReasonNoServiceLabel, want, slice.Name, seen)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitCount(1)
	// Switchyard reports a problem object once, not on every update or resync
	// (pkg/controller/problems.go): fix the slice, then break it again, so that the same
	// Event repeats and its count is patched.
	slice.Labels = map[string]string{discovery.LabelServiceName: "provoke-events-fixed"}
	if slice, err = sliceClient.Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // let every daemon see the fixed slice
	slice.Labels = nil
	if _, err := sliceClient.Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCount(2)
}

// accessCheck is one SelfSubjectAccessReview and the permission it is about.
type accessCheck struct {
	attrs      authv1.ResourceAttributes
	permission permission
}

// accessChecks lists every verb on every resource and subresource the apiserver
// serves (from discovery, as admin), in kube-system and cluster-wide for namespaced
// resources, plus the special verbs that grant power over others.
func (s *suite) accessChecks() ([]accessCheck, error) {
	_, lists, err := s.cluster.Clientset.Discovery().ServerGroupsAndResources()
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	var checks []accessCheck
	add := func(group, resource, subresource, verb string, namespaced bool) {
		name := resource
		if subresource != "" {
			name += "/" + subresource
		}
		p := permission{group, name, verb}
		checks = append(checks, accessCheck{authv1.ResourceAttributes{Group: group, Resource: resource, Subresource: subresource, Verb: verb}, p})
		if namespaced {
			checks = append(checks, accessCheck{authv1.ResourceAttributes{Namespace: "kube-system", Group: group, Resource: resource, Subresource: subresource, Verb: verb}, p})
		}
	}
	seen := map[string]bool{}
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			return nil, err
		}
		for _, r := range list.APIResources {
			key := gv.Group + "/" + r.Name
			if seen[key] {
				continue // the same resource in another version
			}
			seen[key] = true
			resource, subresource, _ := strings.Cut(r.Name, "/")
			for _, verb := range verbs {
				add(gv.Group, resource, subresource, verb, r.Namespaced)
			}
		}
	}
	if len(seen) < 50 {
		return nil, fmt.Errorf("discovery listed only %d resources", len(seen))
	}
	for _, special := range []struct{ group, resource, verb string }{
		{"", "users", "impersonate"}, {"", "groups", "impersonate"}, {"", "serviceaccounts", "impersonate"},
		{"authentication.k8s.io", "uids", "impersonate"}, {"authentication.k8s.io", "userextras", "impersonate"},
		{"rbac.authorization.k8s.io", "clusterroles", "escalate"}, {"rbac.authorization.k8s.io", "clusterroles", "bind"},
		{"rbac.authorization.k8s.io", "roles", "escalate"}, {"rbac.authorization.k8s.io", "roles", "bind"},
		{"certificates.k8s.io", "signers", "approve"}, {"certificates.k8s.io", "signers", "sign"},
		{"", "nodes", "proxy"},
	} {
		add(special.group, special.resource, "", special.verb, special.resource == "roles" || special.resource == "serviceaccounts")
	}
	return checks, nil
}
