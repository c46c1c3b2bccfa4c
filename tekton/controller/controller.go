// Package controller is signet's Tekton Chains-style controller: it watches
// v1 TaskRuns and PipelineRuns, and when one completes it signs what the run
// produced and attests its SLSA v1 provenance through core/pipeline, keyless,
// then marks the run with small signet.dev/ annotations. It only
// translates: tekton/artifacts finds the subjects, tekton/provenance writes
// the predicate, core/pipeline makes and stores the bundles.
//
// It never holds a run's deletion (no finalizers), keeps no payload on the
// run, and signs only while it holds a Lease, so two replicas sign a run
// once.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pipelineapi "github.com/tektoncd/pipeline/pkg/apis/pipeline"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonclient "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	tektonscheme "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/scheme"
	tektoninformers "github.com/tektoncd/pipeline/pkg/client/informers/externalversions"
	listers "github.com/tektoncd/pipeline/pkg/client/listers/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/tekton/settings"
)

// Options configure a Controller.
type Options struct {
	Kube   kubernetes.Interface
	Tekton tektonclient.Interface
	// Namespace limits the runs watched; "" watches every namespace.
	Namespace string
	// ConfigNamespace and ConfigName name the ConfigMap (and the Lease's
	// namespace).
	ConfigNamespace, ConfigName string
	// Services returns the signing services; it is called per attempt and
	// may fail while the server is down (the attempt is then retried).
	Services func(ctx context.Context) (*sign.Services, error)
	// IdentityTokenFile is the controller's projected token.
	IdentityTokenFile string
	// AllowInsecureRegistry permits plain HTTP to registries off loopback.
	AllowInsecureRegistry bool
	// RegistryTransport, if set, is the base transport to registries.
	RegistryTransport http.RoundTripper
	// Verifier, if set, verifies every bundle against its trusted root
	// before any destination gets it.
	Verifier *verify.Verifier
	Workers  int
	// RetryBase and RetryMax bound the exponential backoff between attempts
	// of one run (defaults 1s and 5m).
	RetryBase, RetryMax time.Duration
	// LeaseName and Identity are the leader-election Lease and this
	// replica's name in it; LeaseDuration is how long a dead leader keeps
	// it (default 15s).
	LeaseName, Identity string
	LeaseDuration       time.Duration
	Logger              *slog.Logger
	Registerer          prometheus.Registerer
	Now                 func() time.Time
}

// Controller signs completed runs.
type Controller struct {
	o        Options
	log      *slog.Logger
	queue    workqueue.TypedRateLimitingInterface[string]
	metrics  *metrics
	recorder record.EventRecorder
	keys     *keychains

	taskRuns     listers.TaskRunLister
	pipelineRuns listers.PipelineRunLister
	synced       []cache.InformerSynced
	factory      tektoninformers.SharedInformerFactory
	cmFactory    informers.SharedInformerFactory

	cfg atomic.Pointer[settings.Settings]

	// done remembers runs this process marked, until the informer shows
	// the annotation: a stale cache must not get a run signed twice.
	doneMu sync.Mutex
	done   map[types.UID]time.Time

	// pending holds what was signed for runs not yet marked (the patch
	// failed), so a retry marks them without signing again.
	pending map[types.UID]outcome

	workers  sync.WaitGroup
	stopping atomic.Bool
}

// New checks the ConfigMap (a bad one is refused before anything is
// watched) and sets up the informers.
func New(ctx context.Context, o Options) (*Controller, error) {
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Minute
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{
		o:       o,
		log:     o.Logger,
		done:    map[types.UID]time.Time{},
		pending: map[types.UID]outcome{},
		keys:    &keychains{kube: o.Kube, ttl: 30 * time.Second, now: o.Now, m: map[string]cachedKeychain{}},
	}
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](o.RetryBase, o.RetryMax),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "signet-tekton"})
	c.metrics = newMetrics(o.Registerer, func() float64 { return float64(c.queue.Len()) })

	st, err := c.loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	c.cfg.Store(&st)

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := tektonscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: o.Kube.CoreV1().Events("")})
	c.recorder = b.NewRecorder(scheme, corev1.EventSource{Component: "signet-tekton"})

	opts := []tektoninformers.SharedInformerOption{tektoninformers.WithTransform(slim)}
	if o.Namespace != "" {
		opts = append(opts, tektoninformers.WithNamespace(o.Namespace))
	}
	c.factory = tektoninformers.NewSharedInformerFactoryWithOptions(o.Tekton, 10*time.Minute, opts...)
	tri := c.factory.Tekton().V1().TaskRuns()
	pri := c.factory.Tekton().V1().PipelineRuns()
	c.taskRuns, c.pipelineRuns = tri.Lister(), pri.Lister()
	if _, err := tri.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onTaskRun,
		UpdateFunc: func(_, obj any) { c.onTaskRun(obj) },
	}); err != nil {
		return nil, err
	}
	if _, err := pri.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onPipelineRun,
		UpdateFunc: func(_, obj any) { c.onPipelineRun(obj) },
	}); err != nil {
		return nil, err
	}

	c.cmFactory = informers.NewSharedInformerFactoryWithOptions(o.Kube, 10*time.Minute,
		informers.WithNamespace(o.ConfigNamespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.ConfigName).String()
		}))
	cmi := c.cmFactory.Core().V1().ConfigMaps().Informer()
	if _, err := cmi.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.onConfig(obj) },
		UpdateFunc: func(_, obj any) { c.onConfig(obj) },
		DeleteFunc: func(any) { c.setConfig(nil, "deleted") },
	}); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{tri.Informer().HasSynced, pri.Informer().HasSynced, cmi.HasSynced}
	return c, nil
}

// DefaultWorkers is how many runs are signed at once by default: each run
// spends most of its time waiting on the CA, the log batch and the
// registry, so a few dozen keep two cores busy.
const DefaultWorkers = 32

// slim drops what the controller never reads before an object enters the
// informer cache: managed fields always, and everything but the metadata
// of a run already marked (most runs in a big cluster), which is what keeps
// memory flat with thousands of runs.
func slim(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	switch r := obj.(type) {
	case *pipelinev1.TaskRun:
		if r.Annotations[AnnotationSigned] != "" {
			return &pipelinev1.TaskRun{TypeMeta: r.TypeMeta, ObjectMeta: r.ObjectMeta}, nil
		}
	case *pipelinev1.PipelineRun:
		if r.Annotations[AnnotationSigned] != "" {
			return &pipelinev1.PipelineRun{TypeMeta: r.TypeMeta, ObjectMeta: r.ObjectMeta}, nil
		}
	}
	return obj, nil
}

func (c *Controller) loadConfig(ctx context.Context) (settings.Settings, error) {
	cm, err := c.o.Kube.CoreV1().ConfigMaps(c.o.ConfigNamespace).Get(ctx, c.o.ConfigName, metav1.GetOptions{})
	switch {
	case k8serrors.IsNotFound(err):
		c.log.Info("no ConfigMap; using the defaults", "configmap", c.o.ConfigNamespace+"/"+c.o.ConfigName)
		return settings.Default(), nil
	case err != nil:
		return settings.Settings{}, &ConfigError{Namespace: c.o.ConfigNamespace, Name: c.o.ConfigName, Err: err}
	}
	st, err := settings.Parse(cm.Data)
	if err != nil {
		return settings.Settings{}, &ConfigError{Namespace: c.o.ConfigNamespace, Name: c.o.ConfigName, Err: err}
	}
	return st, nil
}

// ConfigError is a ConfigMap that could not be read or is refused.
type ConfigError struct {
	Namespace, Name string
	Err             error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("ConfigMap %s/%s: %v", e.Namespace, e.Name, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

func (c *Controller) onConfig(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	c.setConfig(cm, "changed")
}

// setConfig takes a changed ConfigMap; a refused one keeps the settings in
// force and says why, on the log and as an Event on the ConfigMap.
func (c *Controller) setConfig(cm *corev1.ConfigMap, what string) {
	var data map[string]string
	if cm != nil {
		data = cm.Data
	}
	st, err := settings.Parse(data)
	if err != nil {
		c.log.Error("ConfigMap refused; keeping the settings in force", "configmap", c.o.ConfigNamespace+"/"+c.o.ConfigName, "error", err)
		if cm != nil {
			c.recorder.Event(cm, corev1.EventTypeWarning, "ConfigRefused", clip(err.Error()))
		}
		return
	}
	if old := c.cfg.Swap(&st); old == nil || *old != st {
		c.log.Info("settings "+what, "configmap", c.o.ConfigNamespace+"/"+c.o.ConfigName, "settings", fmt.Sprintf("%+v", st))
	}
}

func (c *Controller) settings() settings.Settings { return *c.cfg.Load() }

const (
	kindTaskRun     = "taskrun"
	kindPipelineRun = "pipelinerun"
)

func runKey(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

func (c *Controller) onTaskRun(obj any) {
	tr, ok := obj.(*pipelinev1.TaskRun)
	if !ok {
		return
	}
	// A PipelineRun waits for its TaskRuns; each one that finishes may be
	// the last it waited for.
	if pr := tr.Labels[pipelineapi.PipelineRunLabelKey]; pr != "" && tr.IsDone() {
		c.queue.Add(runKey(kindPipelineRun, tr.Namespace, pr))
	}
	switch {
	case tr.Annotations[AnnotationSigned] != "":
		c.forget(tr.UID)
	case tr.IsDone():
		c.queue.Add(runKey(kindTaskRun, tr.Namespace, tr.Name))
	}
}

func (c *Controller) onPipelineRun(obj any) {
	pr, ok := obj.(*pipelinev1.PipelineRun)
	if !ok {
		return
	}
	switch {
	case pr.Annotations[AnnotationSigned] != "":
		c.forget(pr.UID)
	case pr.IsDone():
		c.queue.Add(runKey(kindPipelineRun, pr.Namespace, pr.Name))
	}
}

// Run watches and, while this replica leads, signs, until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	c.factory.Start(ctx.Done())
	c.cmFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("the informer caches did not sync: %w", context.Cause(ctx))
	}
	c.log.Info("watching runs", "namespace", nsOrAll(c.o.Namespace), "queued", c.queue.Len())
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.o.ConfigNamespace, Name: c.o.LeaseName},
		Client:     c.o.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.o.Identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   c.o.LeaseDuration,
		RenewDeadline:   c.o.LeaseDuration * 2 / 3,
		RetryPeriod:     c.o.LeaseDuration / 7,
		ReleaseOnCancel: true,
		Name:            c.o.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: c.lead,
			OnStoppedLeading: func() { c.metrics.leader.Set(0) },
			OnNewLeader: func(id string) {
				if id != c.o.Identity {
					c.log.Info("another replica leads; standing by", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	// The Lease is given up only after the workers have finished the runs
	// they hold: a replica taking over must not sign a run this one is
	// still signing.
	leCtx, release := context.WithCancel(context.WithoutCancel(ctx))
	defer release()
	go func() {
		<-ctx.Done()
		c.drain()
		release()
	}()
	le.Run(leCtx)
	if ctx.Err() == nil {
		// As Kubernetes' own controllers do: a replica that lost its lease
		// may be partitioned; it exits and starts again as a follower.
		return ErrLostLease
	}
	return nil
}

// ErrLostLease ends Run when another replica took the Lease.
var ErrLostLease = errors.New("lost the leader-election lease (another replica signs now); exiting to start again as a follower")

func nsOrAll(ns string) string {
	if ns == "" {
		return "(all)"
	}
	return ns
}

// lead runs the workers until leadership ends: then the queue shuts down,
// each worker finishes the run it holds, and the rest stay unsigned for the
// next leader.
func (c *Controller) lead(ctx context.Context) {
	c.metrics.leader.Set(1)
	c.log.Info("leading; signing", "workers", c.o.Workers, "queued", c.queue.Len())
	for range c.o.Workers {
		c.workers.Go(func() {
			for c.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
}

// shutdownGrace bounds how long a stopping controller waits for the runs
// its workers hold (a Deployment's default termination grace is 30s).
const shutdownGrace = 20 * time.Second

// drain stops the workers taking new runs and waits for those in hand.
func (c *Controller) drain() {
	c.stopping.Store(true)
	c.queue.ShutDown()
	done := make(chan struct{})
	go func() { c.workers.Wait(); close(done) }()
	select {
	case <-done:
		c.log.Info("workers finished the runs in hand")
	case <-time.After(shutdownGrace):
		c.log.Warn("workers still signing after the shutdown grace; stopping anyway", "grace", shutdownGrace.String())
	}
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if ctx.Err() != nil || c.stopping.Load() {
		return false // left for whoever signs next
	}
	err := c.process(ctx, key)
	var wait *waitError
	switch {
	case err == nil:
		c.queue.Forget(key)
	case errors.As(err, &wait):
		c.queue.AddAfter(key, wait.after)
	case ctx.Err() != nil:
	default:
		c.queue.AddRateLimited(key)
	}
	return true
}

// waitError says a run is not ready yet (a PipelineRun's TaskRuns are
// still running or not yet seen): try again later, no attempt spent.
type waitError struct {
	after  time.Duration
	reason string
}

func (e *waitError) Error() string { return e.reason }

// markDone remembers a run marked (or skipped) by this process; forget drops
// a run once the cache shows its mark, so that a user who removes the mark
// gets the run signed again. Past 10,000 entries the oldest are dropped.
func (c *Controller) markDone(uid types.UID) {
	c.doneMu.Lock()
	defer c.doneMu.Unlock()
	now := c.o.Now()
	c.done[uid] = now
	if len(c.done) > 10000 {
		for k, t := range c.done {
			if now.Sub(t) > 15*time.Minute {
				delete(c.done, k)
			}
		}
	}
}

func (c *Controller) isDone(uid types.UID) bool {
	c.doneMu.Lock()
	defer c.doneMu.Unlock()
	_, ok := c.done[uid]
	return ok
}

// maxPending bounds the outcomes kept for runs that could not be marked;
// past it the oldest are signed again rather than memory growing.
const maxPending = 10000

func (c *Controller) keepOutcome(uid types.UID, o outcome) {
	c.doneMu.Lock()
	defer c.doneMu.Unlock()
	if len(c.pending) >= maxPending {
		clear(c.pending)
	}
	c.pending[uid] = o
}

func (c *Controller) pendingOutcome(uid types.UID) (outcome, bool) {
	c.doneMu.Lock()
	defer c.doneMu.Unlock()
	o, ok := c.pending[uid]
	return o, ok
}

func (c *Controller) dropOutcome(uid types.UID) {
	c.doneMu.Lock()
	defer c.doneMu.Unlock()
	delete(c.pending, uid)
}

func (c *Controller) forget(uid types.UID) {
	c.doneMu.Lock()
	defer c.doneMu.Unlock()
	delete(c.done, uid)
}
