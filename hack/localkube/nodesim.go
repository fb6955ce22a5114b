package main

// The node simulator stands in for kubelets: it registers Nodes with allocatable resources, keeps their leases
// fresh so the node-lifecycle controller sees them healthy, moves every Pod the scheduler binds to them to
// Running/Ready, and completes the deletion of terminating Pods (a kubelet's job). No container runs.
//
// Behaviour can be chosen per Pod to test failure paths, by the annotation `sim.plinth.dev/behavior` or, failing
// that, by a marker in a container image reference (e.g. `registry.example/server:crashloop`):
//   crashloop  containers never start: waiting in CrashLoopBackOff with a growing restartCount, Pod not Ready
//   unready    containers run but never pass readiness
//   fail       run-to-completion Pods end Failed (exit code 1)
// Pods with restartPolicy Never/OnFailure (Jobs, helm test hooks) otherwise end Succeeded at once.

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

const (
	behaviorAnnotation = "sim.plinth.dev/behavior"
	leaseDuration      = 40
	heartbeatPeriod    = 10 * time.Second
	crashLoopPeriod    = 5 * time.Second
)

type nodeSimulator struct {
	client  kubernetes.Interface
	opts    upOptions
	names   []string
	logger  *log.Logger
	podIPs  atomic.Uint32
	ipMu    sync.Mutex
	ips     map[types.UID]string
	queue   workqueue.TypedRateLimitingInterface[string]
	lister  cache.Indexer
	started chan struct{}
}

func newNodeSimulator(server string, certs *pki, opts upOptions, logPath string) (*nodeSimulator, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // up removes it at start
	if err != nil {
		return nil, err
	}
	cfg := &rest.Config{
		Host:            server,
		TLSClientConfig: rest.TLSClientConfig{CAData: certs.caPEM, CertData: certs.adminPEM, KeyData: certs.adminKP},
		QPS:             200,
		Burst:           400,
		UserAgent:       "localkube-nodesim",
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := &nodeSimulator{
		client:  client,
		opts:    opts,
		logger:  log.New(logFile, "nodesim ", log.LstdFlags|log.Lmicroseconds),
		ips:     map[types.UID]string{},
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		started: make(chan struct{}),
	}
	for i := 0; i < opts.nodes; i++ {
		s.names = append(s.names, fmt.Sprintf("plinth-node-%d", i))
	}
	return s, nil
}

func (s *nodeSimulator) NodeNames() []string { return s.names }

// WaitRegistered blocks until every simulated Node exists with Ready=True.
func (s *nodeSimulator) WaitRegistered(ctx context.Context, timeout time.Duration) error {
	select {
	case <-s.started:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		return fmt.Errorf("nodes not registered within %s", timeout)
	}
}

func (s *nodeSimulator) Run(ctx context.Context) error {
	defer s.queue.ShutDown()
	for i, name := range s.names {
		if err := s.registerNode(ctx, i, name); err != nil {
			return fmt.Errorf("registering node %s: %w", name, err)
		}
	}
	close(s.started)

	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermNotEqualSelector("spec.nodeName", "").String()
		}))
	podInformer := factory.Core().V1().Pods().Informer()
	s.lister = podInformer.GetIndexer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			s.queue.Add(key)
		}
	}
	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: func(obj any) {
			if pod, ok := obj.(*corev1.Pod); ok {
				s.ipMu.Lock()
				delete(s.ips, pod.UID)
				s.ipMu.Unlock()
			}
		},
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.HasSynced) {
		return ctx.Err()
	}
	for w := 0; w < 4; w++ {
		go s.worker(ctx)
	}
	heartbeat := time.NewTicker(heartbeatPeriod)
	crashTick := time.NewTicker(crashLoopPeriod)
	defer heartbeat.Stop()
	defer crashTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-heartbeat.C:
			for _, name := range s.names {
				if err := s.renewLease(ctx, name); err != nil && ctx.Err() == nil {
					s.logger.Printf("renewing lease of %s: %v", name, err)
				} else if err := s.reassertReady(ctx, name); err != nil && ctx.Err() == nil {
					s.logger.Printf("reporting node %s Ready: %v", name, err)
				}
			}
		case <-crashTick.C:
			// Crash-looping containers restart over and over: requeue them so restartCount keeps growing.
			for _, obj := range s.lister.List() {
				if pod := obj.(*corev1.Pod); s.ours(pod) && behaviorOf(pod) == "crashloop" {
					enqueue(pod)
				}
			}
		}
	}
}

func (s *nodeSimulator) registerNode(ctx context.Context, index int, name string) error {
	nodes := s.client.CoreV1().Nodes()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname":           name,
			"kubernetes.io/os":                 "linux",
			"kubernetes.io/arch":               "amd64",
			"node.kubernetes.io/instance-type": "localkube-simulated",
			"topology.kubernetes.io/zone":      fmt.Sprintf("local-%c", 'a'+index%3),
			"type":                             "simulated",
		}, Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"}},
		Spec: corev1.NodeSpec{PodCIDR: fmt.Sprintf("10.244.%d.0/24", index)},
	}
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = nodes.Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse(s.opts.nodeCPU),
		corev1.ResourceMemory:           resource.MustParse(s.opts.nodeMemory),
		corev1.ResourcePods:             *resource.NewQuantity(int64(s.opts.nodePods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "simulated by localkube", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "RouteCreated", LastHeartbeatTime: now, LastTransitionTime: now},
		},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: name}},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion: kubeVersion, OperatingSystem: "linux", Architecture: "amd64",
			ContainerRuntimeVersion: "localkube://simulated", OSImage: "localkube simulated node", KernelVersion: "simulated",
		},
	}
	updated, err := nodes.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	// NodeRestriction-style admission adds the not-ready taint at creation; the node is ready, so drop it now
	// rather than wait for the node-lifecycle controller's next pass.
	var taints []corev1.Taint
	for _, t := range updated.Spec.Taints {
		if t.Key != corev1.TaintNodeNotReady {
			taints = append(taints, t)
		}
	}
	if len(taints) != len(updated.Spec.Taints) {
		updated.Spec.Taints = taints
		if _, err := nodes.Update(ctx, updated, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
			return err
		}
	}
	return s.renewLease(ctx, name)
}

func (s *nodeSimulator) renewLease(ctx context.Context, name string) error {
	leases := s.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		holder, duration := name, int32(leaseDuration)
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &duration, RenewTime: &now},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// reassertReady reports the node Ready again when the node-lifecycle controller marked it Unknown (it does so when
// the leases could not be renewed, e.g. during an API outage drill): a kubelet that is alive posts its status, and
// the controller then lifts the unreachable taints. One GET per node and heartbeat otherwise.
func (s *nodeSimulator) reassertReady(ctx context.Context, name string) error {
	node, err := s.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	changed := false
	for i, c := range node.Status.Conditions {
		want, reason := corev1.ConditionFalse, "KubeletHasNoPressure"
		if c.Type == corev1.NodeReady {
			want, reason = corev1.ConditionTrue, "KubeletReady"
		}
		if c.Status != want {
			node.Status.Conditions[i].Status, node.Status.Conditions[i].LastTransitionTime = want, now
			node.Status.Conditions[i].Reason, node.Status.Conditions[i].Message = reason, "simulated by localkube"
			changed = true
		}
		node.Status.Conditions[i].LastHeartbeatTime = now
	}
	if !changed {
		return nil
	}
	_, err = s.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

func (s *nodeSimulator) ours(pod *corev1.Pod) bool {
	for _, n := range s.names {
		if pod.Spec.NodeName == n {
			return true
		}
	}
	return false
}

func (s *nodeSimulator) worker(ctx context.Context) {
	for {
		key, shutdown := s.queue.Get()
		if shutdown {
			return
		}
		if err := s.sync(ctx, key); err != nil && ctx.Err() == nil {
			if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				s.logger.Printf("syncing pod %s: %v", key, err)
			}
			s.queue.AddRateLimited(key)
		} else {
			s.queue.Forget(key)
		}
		s.queue.Done(key)
	}
}

func (s *nodeSimulator) sync(ctx context.Context, key string) error {
	obj, exists, err := s.lister.GetByKey(key)
	if err != nil || !exists {
		return err
	}
	pod := obj.(*corev1.Pod)
	if !s.ours(pod) {
		return nil
	}
	pods := s.client.CoreV1().Pods(pod.Namespace)
	if pod.DeletionTimestamp != nil {
		// A kubelet would stop the containers, then remove the Pod for good.
		zero := int64(0)
		err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	desired := s.desiredStatus(pod)
	if statusEqual(pod.Status, desired) {
		return nil
	}
	updated := pod.DeepCopy()
	updated.Status = desired
	_, err = pods.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return err
}

func behaviorOf(pod *corev1.Pod) string {
	if b := pod.Annotations[behaviorAnnotation]; b != "" {
		return b
	}
	for _, c := range pod.Spec.Containers {
		for _, marker := range []string{"crashloop", "unready", "fail"} {
			if strings.Contains(c.Image, ":"+marker) || strings.Contains(c.Image, "/"+marker) {
				return marker
			}
		}
	}
	return "run"
}

func (s *nodeSimulator) podIP(pod *corev1.Pod) string {
	if pod.Status.PodIP != "" {
		return pod.Status.PodIP
	}
	s.ipMu.Lock()
	defer s.ipMu.Unlock()
	if ip, ok := s.ips[pod.UID]; ok {
		return ip
	}
	n := s.podIPs.Add(1)
	ip := fmt.Sprintf("10.%d.%d.%d", 128+(n>>16)%64, (n>>8)%256, n%256)
	s.ips[pod.UID] = ip
	return ip
}

func (s *nodeSimulator) desiredStatus(pod *corev1.Pod) corev1.PodStatus {
	behavior := behaviorOf(pod)
	runToCompletion := pod.Spec.RestartPolicy == corev1.RestartPolicyNever || pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure
	started := metav1.Now()
	if pod.Status.StartTime != nil {
		started = *pod.Status.StartTime
	}
	ip := s.podIP(pod)
	st := corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    "127.0.0.1",
		HostIPs:   []corev1.HostIP{{IP: "127.0.0.1"}},
		PodIP:     ip,
		PodIPs:    []corev1.PodIP{{IP: ip}},
		StartTime: &started,
		QOSClass:  pod.Status.QOSClass,
	}
	for _, c := range pod.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "sim://" + c.Image, ContainerID: containerID(pod, c.Name),
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: started, FinishedAt: started}},
			Ready: true,
		})
	}
	ready := behavior == "run"
	for _, c := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "sim://" + c.Image, ContainerID: containerID(pod, c.Name)}
		switch {
		case runToCompletion && behavior == "fail":
			st.Phase = corev1.PodFailed
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", StartedAt: started, FinishedAt: metav1.Now()}
		case runToCompletion:
			st.Phase = corev1.PodSucceeded
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: started, FinishedAt: metav1.Now()}
		case behavior == "crashloop":
			// Derived from the Pod's age rather than counted per sync, so status updates cannot feed back into it.
			restarts := int32(1 + time.Since(started.Time)/crashLoopPeriod)
			cs.RestartCount = restarts
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off restarting failed container (simulated)"}
			cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", StartedAt: started, FinishedAt: started}
		default:
			t := true
			cs.Started = &t
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: started}
			cs.Ready = behavior == "run"
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	if st.Phase != corev1.PodRunning {
		ready = false
	}
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		status := corev1.ConditionTrue
		if !ok {
			status = corev1.ConditionFalse
		}
		c := corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: started}
		for _, old := range pod.Status.Conditions {
			if old.Type == t && old.Status == status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	notReadyReason := ""
	if !ready {
		notReadyReason = "ContainersNotReady"
	}
	st.Conditions = []corev1.PodCondition{
		cond("PodReadyToStartContainers", true, ""),
		cond(corev1.PodInitialized, true, ""),
		cond(corev1.PodReady, ready, notReadyReason),
		cond(corev1.ContainersReady, ready, notReadyReason),
		cond(corev1.PodScheduled, true, ""),
	}
	return st
}

func containerID(pod *corev1.Pod, name string) string {
	return fmt.Sprintf("sim://%s/%s", pod.UID, name)
}

// statusEqual compares what the simulator owns, ignoring timestamps that would otherwise churn updates.
func statusEqual(a, b corev1.PodStatus) bool {
	if a.Phase != b.Phase || a.PodIP != b.PodIP || len(a.ContainerStatuses) != len(b.ContainerStatuses) || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.ContainerStatuses {
		x, y := a.ContainerStatuses[i], b.ContainerStatuses[i]
		if x.Name != y.Name || x.Ready != y.Ready || x.RestartCount != y.RestartCount ||
			(x.State.Running == nil) != (y.State.Running == nil) || (x.State.Waiting == nil) != (y.State.Waiting == nil) ||
			(x.State.Terminated == nil) != (y.State.Terminated == nil) {
			return false
		}
	}
	for i := range a.Conditions {
		if a.Conditions[i].Type != b.Conditions[i].Type || a.Conditions[i].Status != b.Conditions[i].Status {
			return false
		}
	}
	return true
}
