// Command runningpods-client lists a node's pods the way Go tools do: through the API server's
// nodes/NODE/proxy with client-go's REST client (Resource("nodes").SubResource("proxy")
// .Suffix(PATH)), whose Suffix cleans the path, so `runningpods/` reaches the node as `/runningpods`. It decodes the answer into a typed
// v1.PodList, as those tools do, and prints it as JSON with the raw body's `items` kept apart,
// so a test can tell `[]` from `null`.
//
// Usage: runningpods-client KUBECONFIG NODE PATH (PATH e.g. runningpods/ or pods)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

type answer struct {
	RawItems json.RawMessage `json:"rawItems"`
	Names    []string        `json:"names"`
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: runningpods-client KUBECONFIG NODE PATH")
		os.Exit(2)
	}
	config, err := clientcmd.BuildConfigFromFlags("", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeconfig:", err)
		os.Exit(2)
	}
	clients, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := clients.CoreV1().RESTClient().Get().
		Resource("nodes").Name(os.Args[2]).SubResource("proxy").Suffix(os.Args[3]).DoRaw(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "GET", os.Args[3], ":", err)
		os.Exit(1)
	}
	var raw struct {
		Items json.RawMessage `json:"items"`
	}
	var pods corev1.PodList
	if err := json.Unmarshal(body, &raw); err != nil {
		fmt.Fprintln(os.Stderr, "decode:", err)
		os.Exit(1)
	}
	if err := json.Unmarshal(body, &pods); err != nil {
		fmt.Fprintln(os.Stderr, "decode PodList:", err)
		os.Exit(1)
	}
	out := answer{RawItems: raw.Items, Names: []string{}}
	for _, pod := range pods.Items {
		out.Names = append(out.Names, pod.Namespace+"/"+pod.Name)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
