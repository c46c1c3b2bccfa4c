package controller

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	k8schain "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/signet-dev/signet/core/token"
	"github.com/signet-dev/signet/tekton/settings"
)

// tokenLifetime is what a requested token asks for: the CA needs it for one
// certificate request, and ten minutes is the apiserver's minimum.
const tokenLifetime = 10 * time.Minute

// identityToken returns the token a run is signed with: the controller's
// own projected token, read afresh each time (the kubelet rotates it), or
// one requested through the TokenRequest API for the run's ServiceAccount.
func (c *Controller) identityToken(ctx context.Context, mode, namespace, serviceAccount string) (string, error) {
	if mode == settings.IdentityRunServiceAccount {
		exp := int64(tokenLifetime / time.Second)
		tr, err := c.o.Kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount, &authv1.TokenRequest{
			Spec: authv1.TokenRequestSpec{Audiences: []string{token.DefaultAudience}, ExpirationSeconds: &exp},
		}, metav1.CreateOptions{})
		if err != nil {
			return "", &IdentityError{Mode: mode, Namespace: namespace, ServiceAccount: serviceAccount, Err: err}
		}
		return tr.Status.Token, nil
	}
	b, err := os.ReadFile(c.o.IdentityTokenFile)
	if err != nil {
		return "", &IdentityError{Mode: mode, File: c.o.IdentityTokenFile, Err: err}
	}
	raw := strings.TrimSpace(string(b))
	if raw == "" {
		return "", &IdentityError{Mode: mode, File: c.o.IdentityTokenFile, Err: fmt.Errorf("the file is empty")}
	}
	return raw, nil
}

// IdentityError is a token that could not be had.
type IdentityError struct {
	Mode                      string
	File                      string
	Namespace, ServiceAccount string
	Err                       error
}

func (e *IdentityError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("reading the controller's identity token %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("requesting a token for ServiceAccount %s/%s: %v", e.Namespace, e.ServiceAccount, e.Err)
}

func (e *IdentityError) Unwrap() error { return e.Err }

// keychains caches each (namespace, ServiceAccount)'s registry keychain for
// a short while: building one reads the ServiceAccount and its pull
// secrets, two or more API calls a run would otherwise cost.
type keychains struct {
	kube kubernetes.Interface
	ttl  time.Duration
	now  func() time.Time

	mu sync.Mutex
	m  map[string]cachedKeychain
}

type cachedKeychain struct {
	kc      authn.Keychain
	expires time.Time
}

// maxKeychains bounds the cache; past it, expired entries are dropped.
const maxKeychains = 4096

func (k *keychains) get(ctx context.Context, namespace, serviceAccount string) (authn.Keychain, error) {
	key := namespace + "/" + serviceAccount
	now := k.now()
	k.mu.Lock()
	if c, ok := k.m[key]; ok && now.Before(c.expires) {
		k.mu.Unlock()
		return c.kc, nil
	}
	k.mu.Unlock()
	// As Chains does: the run's ServiceAccount's image pull secrets, then
	// what the controller itself has (docker config, credential helpers).
	kc, err := k8schain.New(ctx, k.kube, k8schain.Options{Namespace: namespace, ServiceAccountName: serviceAccount})
	if err != nil {
		return nil, fmt.Errorf("reading the registry credentials of ServiceAccount %s/%s: %w", namespace, serviceAccount, err)
	}
	kc = authn.NewMultiKeychain(kc, authn.DefaultKeychain)
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.m) >= maxKeychains {
		for key, c := range k.m {
			if !now.Before(c.expires) {
				delete(k.m, key)
			}
		}
		if len(k.m) >= maxKeychains {
			k.m = map[string]cachedKeychain{}
		}
	}
	k.m[key] = cachedKeychain{kc: kc, expires: now.Add(k.ttl)}
	return kc, nil
}
