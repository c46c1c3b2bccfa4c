package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The test binary doubles as a minimal container runtime: run with
// sandboxEnv set, it is already in a user and mount namespace of its own
// (made by sandboxCommand), as the image's user, and it mounts the image's
// root filesystem read-only, the data directory at /data read-write (the
// volume), chroots into it, drops every capability and execs the image's
// entrypoint. Nothing else is mounted: no /tmp, /proc or /dev, so what the
// server needs beyond /data shows as a failure.
const (
	sandboxEnv     = "SIGNET_IMAGE_SANDBOX_ROOT"
	sandboxDataEnv = "SIGNET_IMAGE_SANDBOX_DATA"
	sandboxDirEnv  = "SIGNET_IMAGE_SANDBOX_WORKDIR"
	// probeFailed is the sandbox's exit status when the root filesystem
	// turned out writable: the test then fails instead of trusting it.
	probeFailed = 3
)

func TestMain(m *testing.M) {
	if root := os.Getenv(sandboxEnv); root != "" {
		sandboxMain(root, os.Getenv(sandboxDataEnv), os.Getenv(sandboxDirEnv), os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

// sandboxCommand runs argv (the image's entrypoint and arguments, paths
// inside the image) with the image's config: its Env, in its WorkingDir,
// as uid:gid, in root with data at /data.
func sandboxCommand(t *testing.T, root, data string, uid, gid int, cfg v1.Config, argv []string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, argv...)
	cmd.Env = append([]string{sandboxEnv + "=" + root, sandboxDataEnv + "=" + data, sandboxDirEnv + "=" + cfg.WorkingDir}, cfg.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		// Only the image's user exists in the namespace, mapped to whoever
		// runs the test: no root inside, and no privilege needed outside.
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: uid, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: gid, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		// The namespace's capabilities, kept across the exec into the
		// sandbox helper only, which drops them before the entrypoint.
		AmbientCaps: []uintptr{capSysAdmin, capSysChroot},
		Pdeathsig:   syscall.SIGKILL,
	}
	return cmd
}

const (
	capSysChroot = 18
	capSysAdmin  = 21

	prCapAmbient         = 47
	prCapAmbientClearAll = 4
)

func sandboxMain(root, data, workDir string, argv []string) {
	fail := func(status int, format string, args ...any) {
		fmt.Fprintf(os.Stderr, "sandbox: "+format+"\n", args...)
		os.Exit(status)
	}
	if len(argv) == 0 || data == "" {
		fail(2, "need %s and an entrypoint", sandboxDataEnv)
	}
	must := func(what string, err error) {
		if err != nil {
			fail(2, "%s: %v", what, err)
		}
	}
	must("making mounts private", syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""))
	must("binding the root filesystem", syscall.Mount(root, root, "", syscall.MS_BIND|syscall.MS_REC, ""))
	must("binding the volume at /data", syscall.Mount(data, filepath.Join(root, "data"), "", syscall.MS_BIND, ""))
	// A remount inside a user namespace must keep the flags the outer
	// mount was locked with (nosuid, nodev... of the temporary directory).
	var st syscall.Statfs_t
	must("statfs", syscall.Statfs(root, &st))
	locked := uintptr(st.Flags) & (syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC | syscall.MS_NOATIME | syscall.MS_NODIRATIME | syscall.MS_RELATIME)
	must("making the root filesystem read-only", syscall.Mount("", root, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|locked, ""))
	must("chroot", syscall.Chroot(root))
	must("chdir /", os.Chdir("/"))
	if workDir != "" {
		must("chdir to the working directory", os.Chdir(workDir))
	}

	if err := os.WriteFile("/.probe", nil, 0o600); !errors.Is(err, syscall.EROFS) {
		fail(probeFailed, "writing / should fail with EROFS, got %v", err)
	}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prCapAmbient, prCapAmbientClearAll, 0, 0, 0, 0); errno != 0 {
		fail(2, "clearing ambient capabilities: %v", errno)
	}
	// The environment is the image's alone.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, sandboxEnv+"=") && !strings.HasPrefix(kv, sandboxDataEnv+"=") && !strings.HasPrefix(kv, sandboxDirEnv+"=") {
			env = append(env, kv)
		}
	}
	// A non-root uid loses its permitted capabilities at exec.
	err := syscall.Exec(argv[0], argv, env)
	fail(2, "exec %s: %v", argv[0], err)
}

// userNamespaceHint says what to change when the kernel refuses the
// sandbox's user namespace.
func userNamespaceHint(err error) string {
	if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.ENOSPC) {
		return ""
	}
	return " (this machine forbids unprivileged user namespaces: allow them with sysctl user.max_user_namespaces=15000, kernel.unprivileged_userns_clone=1 on Debian kernels, or kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu)"
}

// processStatus reads the fields of /proc/PID/status the test checks.
func processStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}
