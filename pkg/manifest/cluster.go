package manifest

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// listPageSize bounds each list call, so that a dry run against a big cluster does not
// ask the API server for every Service or EndpointSlice in one response.
const listPageSize = 500

// FromCluster lists every Service, EndpointSlice and Node from the cluster that
// kubeconfigPath describes. An empty path uses the usual client rules: $KUBECONFIG, then
// ~/.kube/config, then the in-cluster service account.
func FromCluster(ctx context.Context, kubeconfigPath string) (*Objects, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfigPath
	config, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %q: %w", kubeconfigPath, err)
	}
	config.UserAgent = "switchyard-dry-run"
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, fmt.Errorf("creating client for %s: %w", config.Host, err)
	}
	return fromClient(ctx, client)
}

// fromClient lists the objects with client; split out so tests can use a fake clientset.
func fromClient(ctx context.Context, client kubernetes.Interface) (*Objects, error) {
	objects := &Objects{}
	err := listAll(ctx, func(opts metav1.ListOptions) (string, error) {
		list, err := client.CoreV1().Services(metav1.NamespaceAll).List(ctx, opts)
		if err != nil {
			return "", fmt.Errorf("listing Services: %w", err)
		}
		for i := range list.Items {
			objects.Services = append(objects.Services, &list.Items[i])
		}
		return list.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	err = listAll(ctx, func(opts metav1.ListOptions) (string, error) {
		list, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceAll).List(ctx, opts)
		if err != nil {
			return "", fmt.Errorf("listing EndpointSlices: %w", err)
		}
		for i := range list.Items {
			objects.EndpointSlices = append(objects.EndpointSlices, &list.Items[i])
		}
		return list.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	err = listAll(ctx, func(opts metav1.ListOptions) (string, error) {
		list, err := client.CoreV1().Nodes().List(ctx, opts)
		if err != nil {
			return "", fmt.Errorf("listing Nodes: %w", err)
		}
		for i := range list.Items {
			objects.Nodes = append(objects.Nodes, &list.Items[i])
		}
		return list.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	return objects, nil
}

// listAll calls list page by page until the API server reports no more.
func listAll(ctx context.Context, list func(metav1.ListOptions) (string, error)) error {
	opts := metav1.ListOptions{Limit: listPageSize}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		next, err := list(opts)
		if err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		opts.Continue = next
	}
}
