// The help texts. The exit statuses listed here are src/errors.ts's EXIT; keep them and the
// exit status table of docs/security.md in step.

const EXIT_STATUS = `Exit status:
  0   success (everything loaded, already live or builtin; or help shown)
  1   the kernel refused a required module (load or unload failed); with
      --show-depends: a name was not found (as modprobe)
  2   bad command line
  3   request refused before anything was done: invalid or unknown name,
      blacklisted (-b), forbidden or not-allowed install/remove rule,
      denied by the host policy or over its max-modules (--policy),
      module builtin or in use (unload)
  4   the module tree, configuration, policy, addon or bundle could not be
      read, or the policy is invalid; a module file that is not a regular
      file, too large or does not decompress
  70  internal error (a bug: please report it)`;

const TREE_OPTIONS = `  -d, --dirname=DIR         use DIR as the root of /lib/modules (like modprobe -d)
  -S, --set-version=VER     kernel version instead of \`uname -r\`
  -C, --config=DIR          modprobe.d directory instead of the defaults; repeatable`;

export const GLOBAL_HELP = `Usage: kmodload COMMAND [OPTIONS] [NAME...]

Load Linux kernel modules exactly as kmod's modprobe would, without running it.

Commands:
  load NAME...        load modules and what they need (like modprobe -a)
  unload NAME...      remove modules and what they left unused (like modprobe -r -a)
  hook                OCI runtime hook: reads the container state on stdin and
                      loads the modules the container asks for (KERNEL_MODULES=)
  hook-config         print ready-to-use hook configurations for this installation
  policy check|lint|export
                      what the host policy decides for a request; check the policy;
                      its denies as modprobe.d lines for the kernel's own autoload;
                      the policy as a Kubernetes ValidatingAdmissionPolicy
  nfd                 node labels for node-feature-discovery: ready, allowed modules
  status              modules kmodload inserted or containers hold, and who holds them
  gc                  drop the holds of containers that are gone (--unload: and unload)
  doctor              will this host load modules for containers, and if not, why
  install-node        put the hook on a node for CRI-O/podman (hooks.d), or with --nri
                      the NRI plugin containerd starts itself; --uninstall
  nri                 resident NRI plugin for containerd, CRI-O and iSulad: decides
                      each container as the hook does, without a hook
  cdi generate        publish the modules the policy allows as CDI devices, for
                      podman/docker run --device kmodload.io/module=NAME

Options:
  -h, --help          show this help (\`kmodload COMMAND --help\` for a command's)
      --version       show the version

${EXIT_STATUS}
`;

export const LOAD_HELP = `Usage: kmodload load [OPTIONS] NAME...

Load each NAME (module name or alias) with its soft dependencies, its
dependencies and every module an alias matches, in modprobe's order. If any
NAME cannot be planned (unknown, invalid, blacklisted with -b, forbidden by an
install rule), nothing is loaded.

Options:
${TREE_OPTIONS}
  -b, --use-blacklist       apply blacklist entries to names given directly too
  -o, --option=NAME=PARAMS  parameters for the requested module NAME, appended
                            after modprobe.d's, e.g. -o ip_vs=conn_tab_bits=12;
                            repeatable (values for one NAME are joined by a space)
  -n, --dry-run             decide and report, load nothing
      --policy=FILE         check the plan against a host policy file first, as the
                            hook does (repeatable; see kmodload policy --help)
  -D, --show-depends        print what modprobe -a --show-depends prints, load nothing
      --allow-install-commands
                            run modprobe.d install rules through /bin/sh (refused
                            otherwise; /bin/true and /bin/false need no shell)
  -v, --verbose             also print module files and parameters
  -q, --quiet               print nothing on success
      --json                print the result as JSON
  -h, --help                show this help

Output: one line per module: "loaded NAME", "already live NAME", "builtin NAME",
"skipped NAME" (install /bin/true), "would load NAME" (dry run), "failed NAME"
(a soft dependency, not fatal). Errors: one line "kmodload: ..." on stderr. A module
already live with other parameters than asked (-o, modprobe.d) stays as it is, as
with modprobe, and a "kmodload: warning: ..." line on stderr says so.

${EXIT_STATUS}
`;

export const UNLOAD_HELP = `Usage: kmodload unload [OPTIONS] NAME...

Remove each NAME: its post soft dependencies, the module, its dependencies left
unused, then its pre soft dependencies (modprobe -r order). A module that is not
loaded is not an error. If any NAME is unknown, builtin, in use or protected by a
remove rule, nothing is removed.

Options:
${TREE_OPTIONS}
  -n, --dry-run             decide and report, remove nothing
      --state-dir=DIR       where container holds are kept (default /run/kmodload): a
                            module a running container holds is not removed
      --ignore-holds        remove held modules anyway
  -f, --force               forced removal (delete_module O_TRUNC); dangerous
      --allow-remove-commands
                            run modprobe.d remove rules through /bin/sh
  -v, --verbose             more output
  -q, --quiet               print nothing on success
      --json                print the result as JSON
  -h, --help                show this help

${EXIT_STATUS}
`;

export const POLICY_HELP = `Usage: kmodload policy check [OPTIONS] NAME...
       kmodload policy lint [--policy FILE]... [-d DIR] [-S VER] [--json]
       kmodload policy export --format modprobe.d [--policy FILE]... [-d DIR] [-S VER]
                              [-C DIR] [--output FILE]
       kmodload policy export --format validating-admission-policy [--policy FILE]...
                              [--name NAME] [--output FILE]

The host policy decides which modules containers may have. The hook reads
/etc/kmodload/policy.conf, then /etc/kmodload/policy.d/*.conf (name order);
--policy FILE (repeatable) replaces them. Format, one directive per line, '#'
comments, '\\' continues a line:

  default allow|deny          verdict for a requested module no rule names (allow)
  max-modules N               most module files one request's plan may name,
                              already loaded ones included (64)
  allow GLOB... [when COND...]
  deny  GLOB... [when COND...]
  params GLOB PARAM=VALUE-GLOB... [when COND...]
                              parameters (and values) a container may pass for
                              a module; a parameter no rule names is refused
  on-param-conflict refuse|warn
                              a module live with other parameters than asked:
                              refuse or warn (default: refuse for a container's
                              parameters, warn for modprobe.d's options)
  COND: annotation KEY=GLOB | source env|annotation|cdi   (all must hold)
        | namespace GLOB | pod-label KEY=GLOB

namespace and pod-label are facts the runtime gives the NRI plugin (kmodload nri);
the hook has none: there an allow that needs one does not apply, a deny does.

GLOBs are fnmatch patterns on module names ('-' and '_' alike). A deny that
applies wins anywhere in the plan (target, dependency, softdep), as do the host's
modprobe.d blocks (blacklist X, install X /bin/true|/bin/false); a requested module
must be allowed by a rule or by 'default allow'; its dependencies come with it.

check: plans NAME... as the hook would and prints each module's verdict and the
rule that decided, and each parameter's; exit 0 when the request would pass, 3
when not. A NAME is read as a container writes its request: 'dummy numdummies=3'
(one argument) asks dummy with a parameter.
  --policy FILE             policy file (repeatable; default: the host's)
  --annotation KEY=VALUE    an annotation of the container (repeatable)
  --source env|annotation|cdi
                            where the names come from (cdi: a CDI device's hook)
  --namespace NS            the pod's namespace, as the NRI plugin has it
  --pod-label KEY=VALUE     a label of the pod, as the NRI plugin has it (repeatable)
${TREE_OPTIONS}
  --json                    the verdict as JSON

lint: reads the policy files and prints every problem as FILE:LINE: problem, and a
note for each rule on the NRI plugin's facts; exit 0 when there is no problem, 4
otherwise. Also problems: a file in policy.d not read because its name does not end
in .conf (99-deny, deny.CONF); with -d or -S, a pattern that can never match a
module of that tree (an alias such as fs-xfs, a name in the wrong letter case); a
module that tree just lacks is a note.
  --policy FILE             policy file (repeatable; default: the host's)
  -d, --dirname=DIR         check the patterns against the tree under DIR
  -S, --set-version=VER     the tree of kernel VER (with -d: under DIR)
  --json                    the problems as JSON

export: the policy's denies as a modprobe.d file for /etc/modprobe.d/, so that the
kernel's own autoload (request_module: net-pf-132, fs-xfs, rtnl-link-dummy...), which
never asks kmodload, honours them too: one "install NAME /bin/false" per module a
deny without 'when' matches in the tree (globs expanded, sorted; an alias resolves to
its module, whose line applies), and "blacklist NAME" too for a module with softdeps
(modprobe ignores its install rule). Denies with 'when', default deny and builtin
modules are named in the header comment, not exported.
  --format modprobe.d       this file
  --policy FILE             policy file (repeatable; default: the host's)
  -d, -S                    the tree whose modules the globs expand to
  -C, --config=DIR          the modprobe.d whose softdeps count (default the host's)
  -o, --output=FILE         write FILE (atomically, mode 0644) instead of stdout

export --format validating-admission-policy: the policy as a Kubernetes (1.30+)
ValidatingAdmissionPolicy and its binding (YAML for kubectl apply -f -): the API
server refuses a pod whose containers ask (KERNEL_MODULES, the annotations) for a
module this policy would not allow as a request, naming the module and the rule.
What admission cannot see (dependencies, aliases, valueFrom/envFrom) the node
still enforces; the YAML's header comment lists it.
  --name NAME               the policy's and the binding's name (default kmodload)
  --policy FILE, -o FILE    as above
`;

export const NFD_HELP = `Usage: kmodload nfd [--output DIR] [--policy FILE]... [-d DIR] [-S VER] [-C DIR]
                    [--hooks-dir DIR]... [--nri-socket PATH]

Writes a node-feature-discovery local feature file, DIR/kmodload (default DIR
/etc/kubernetes/node-feature-discovery/features.d), that NFD turns into node labels:
  kmodload.io/ready=true          when kmodload doctor finds no failure
  kmodload.io/module.NAME=true    for each module the policy explicitly allows (an
                                  allow rule without 'when' matches it, no deny without
                                  'when' does) and this node's tree has, sorted
A pod can then ask for such a node (nodeSelector kmodload.io/module.ip_vs: "true").
No label is written for a module when there is no policy file. The file stays under
NFD's 64 KiB limit: when the modules do not fit, the first ones in name order are
written and a comment line says how many were left out. The file is replaced
atomically (mode 0644); it is rewritten only when its content changes.
  -o, --output=DIR          the features.d directory
  --policy FILE             policy file (repeatable; default: the host's)
${TREE_OPTIONS}
  --hooks-dir DIR           where doctor looks for hooks.d files (repeatable)
  --nri-socket PATH         the runtime's NRI socket doctor looks at

Exit status: 0 the file is written (or already up to date); 2 bad command line;
4 the policy, the module tree or the directory cannot be read or written.
`;

export const STATUS_HELP = `Usage: kmodload status [--state-dir DIR] [--json]

One line per module kmodload knows about (inserted by a kmodload hook, or held by a
container): its state and reference count in the kernel (/sys/module), whether a
kmodload hook inserted it (and with which parameters, asked by which container), and
the containers holding it (id, since when, for which requested name, with which
parameters); then the holds of containers that are gone. Exit status 0.
  --state-dir DIR   where holds are kept (default /run/kmodload)
  --json            the report as JSON
`;

export const GC_HELP = `Usage: kmodload gc [--unload] [--older-than DURATION] [--state-dir DIR] [-d DIR] [-S VER] [-C DIR]

Drops the holds of containers that are gone: the hold's process is not running, or its
pid now belongs to another process (the start time differs). A hold without a usable pid
(iSulad's lcr sends -1) is kept unless older than DURATION (90s, 15m, 12h, 2d).
  --unload          then unload what no hold covers any more: modules a kmodload hook
                    inserted that the kernel shows unused, last inserted first; a
                    modprobe.d remove rule keeps its module (-d, -S, -C: which modprobe.d)
  --state-dir DIR   where holds are kept (default /run/kmodload)
  --json            the result as JSON
Exit status: 0; 1 when the kernel refuses an unload other than "in use" (one line;
ENOSYS: a kernel built without CONFIG_MODULE_UNLOAD cannot unload at all).
`;

export const DOCTOR_HELP = `Usage: kmodload doctor [--json] [-d DIR] [-S VER] [-C DIR] [--policy FILE]...
                       [--hookspec FILE]... [--hooks-dir DIR]... [--nri-socket PATH]
                       [--nri-plugins DIR] [--nri-conf DIR]

Answers "will this host load modules for containers, and if not, why", one line per check
(ok, warn or fail, and the reason): kernel module support (finit_module probed with an
invalid fd), /proc/sys/kernel/modules_disabled, lockdown, module signature enforcement,
the module tree and whether its indexes are current, its compression against the kernel's,
modprobe.d, the host policy (and, a warning, whether modprobe.d keeps its denies from
the kernel's own autoload: kmodload policy export), and each hook configuration found (iSulad hook specs, hooks.d
directories; --hookspec and --hooks-dir name others): the path it runs exists, is
absolute, root-owned, executable and not world-writable.
NRI: whether a runtime offers its socket (--nri-socket, default /var/run/nri/nri.sock),
for kmodload nri --socket; and the plugin install-node --nri puts in the runtime's plugin
directory (--nri-plugins, default /opt/nri/plugins): that it runs, and that its flags in
--nri-conf (default /etc/nri/conf.d) are ones it takes. A node without NRI only warns.
Exit status: 0 when no check fails, 1 otherwise.
`;

export const INSTALL_NODE_HELP = `Usage: kmodload install-node [--root DIR] [--libexec DIR] [--hooks-dir DIR]
                             [--policy FILE]... [--log FILE|none] [--unload-on-stop] [--always]
                             [-d DIR] [-S VER] [-C DIR] [-n]
       kmodload install-node --nri [--nri-idx NN] [--nri-plugins DIR] [--nri-conf DIR]
                             [--binary FILE] [--root DIR] [--libexec DIR] [--policy FILE]...
                             [--log FILE|none] [--unload-on-stop] [-d DIR] [-S VER] [-C DIR]
                             [-n]
       kmodload install-node [--root DIR] [--libexec DIR] [--hooks-dir DIR] --uninstall
       kmodload install-node --nri [--nri-idx NN] [--nri-plugins DIR] [--nri-conf DIR]
                             [--root DIR] [--libexec DIR] --uninstall

Installs the hook on a node for CRI-O and podman: this Node.js binary and this package
under LIBEXEC (default /usr/local/libexec/kmodload), the wrapper LIBEXEC/kmodload-hook,
and HOOKS_DIR/kmodload.json (default /etc/containers/oci/hooks.d), which CRI-O picks up
without a restart; with --unload-on-stop also HOOKS_DIR/kmodload-poststop.json (a hooks.d
entry names one stage). --policy copies the (checked) policy to /etc/kmodload/policy.conf.
Every path is the host's; --root DIR writes them under DIR (the DaemonSet mounts the
host's directories there). Re-running replaces everything atomically (an upgrade);
--uninstall removes the hooks.d files, then LIBEXEC (the policy and the log stay).
  --log FILE|none     the hook's log (default /var/log/kmodload/hook.log)
  --unload-on-stop    the hook also runs at poststop (its own hooks.d file) and unloads
                      what nobody holds
  --always            run for every container, not only annotated ones
  -d, -S, -C, -n      added to the hook's arguments (see kmodload hook --help)

With --nri, installs instead the NRI plugin (kmodload nri) that containerd and CRI-O start
themselves: the executable PLUGINS/NN-kmodload (default /opt/nri/plugins/10-kmodload), a
wrapper running LIBEXEC's node and package, or the single executable itself when this is
one or --binary names one (then nothing goes to LIBEXEC); and its flags in
CONF/NN-kmodload.conf (default /etc/nri/conf.d/10-kmodload.conf): --policy
/etc/kmodload/policy.conf when --policy is given, --log (default
/var/log/kmodload/nri.log), --unload-on-stop, -d, -S, -C, -n. No hooks.d file is written.
The runtime starts the plugin when it starts: restart it; containerd 1.7 needs
[plugins."io.containerd.nri.v1.nri"] disable = false in its config.toml.
--uninstall --nri removes the plugin, then its configuration, then LIBEXEC.
  --nri-idx NN        the plugin's index, two digits (default 10)
  --nri-plugins DIR   the runtime's plugin directory (default /opt/nri/plugins)
  --nri-conf DIR      the runtime's plugin configuration directory (default /etc/nri/conf.d)
  --binary FILE       install FILE, a single executable (npm run build:binary), as the
                      plugin
`;

export const NRI_HELP = `Usage: kmodload nri [--socket PATH] [--name NAME] [--idx NN] [--policy FILE]...
                    [--state-dir DIR] [--log FILE] [--unload-on-stop] [-d DIR] [-S VER]
                    [-C DIR] [-n]

A resident NRI (Node Resource Interface) plugin: containerd (1.7 with NRI enabled,
2.x), CRI-O (>= 1.26) and iSulad (nri-support) call it for each container made
through CRI. It decides each container exactly as \`kmodload hook\` does: the request
from the container's env KERNEL_MODULES=, the pod annotation
org.kmodload.kernel-modules (every container of the pod) or
org.kmodload.kernel-modules/container.NAME (one container); the same policy (re-read
at each decision), plan, holds and log record. A refusal fails the container's
creation with the one-line reason. Stop and remove release the container's hold.
On connecting, the running containers' holds are rebuilt (Synchronize).

NRI fails open: while the plugin is down or slow, containers start without their
modules, unless the runtime requires the plugin (containerd >= 2.2, CRI-O >= 1.34).

Options:
  --socket PATH     the runtime's NRI socket (default /var/run/nri/nri.sock); when
                    the runtime starts the plugin itself (NRI_PLUGIN_SOCKET), that
                    socket is used instead
  --name NAME       the plugin's name (default kmodload, or NRI_PLUGIN_NAME)
  --idx NN          its index, two digits: plugins are called in index order
                    (default 10, or NRI_PLUGIN_IDX)
  --policy FILE     host policy file, repeatable (default /etc/kmodload/policy.conf
                    + policy.d/*.conf)
  --state-dir DIR   where holds are kept (default /run/kmodload)
  --log FILE        append one JSON line per decision to FILE (also written to stderr)
  --unload-on-stop  when a container stops, unload what it was the last to hold
  --insecure-files  use files others than root can write (tests; logged as a warning)
${TREE_OPTIONS}
  -n, --dry-run             plan and log, load nothing, record no hold
  -h, --help                show this help

Runs until the runtime shuts the plugin down or SIGTERM/SIGINT (exit 0); it reconnects
when the runtime restarts. Exit status: 2 bad usage, 1 the runtime's socket (handed
down) failed.
`;

export const CDI_HELP = `Usage: kmodload cdi generate [--policy FILE]... [-d DIR] [-S VER] [-C DIR]
                             [--output FILE] [--binary PATH | --wrapper PATH]
                             [--unload-on-stop] [--set NAME=M1,M2...]... [--log FILE|none]
                             [--state-dir DIR] [-n] [--timeout SEC] [--check]

Publishes kernel modules as CDI (Container Device Interface) devices of kind
kmodload.io/module, so that any engine with CDI can ask for one:

  podman run --device kmodload.io/module=ip_vs ...          (podman >= 4.1)
  docker run --device kmodload.io/module=ip_vs ...          (Docker >= 25, CDI on)

One device per module a container may ask for under the host policy (as the hook
plans it: with 'default deny', what the allow rules let through; with 'default allow',
every module of the tree that no deny or host block refuses, and how many is printed),
and one per --set. A device's only edit is a createRuntime hook running
\`kmodload hook --module NAME\` with the flags below; the hook checks the policy again
when it runs, so a device never loads what the policy denies by then. Device names are
module names as the tree spells them ('_', not '-'). Names that start with a digit
(8021q) go to a second file, NAME-digits.json, at cdiVersion 0.5.0; the main file is
0.3.0, which every CDI library reads.

Options:
  --output FILE           the main spec file (default /etc/cdi/kmodload.json; .json or
                          .yaml); written atomically, 0644; left alone when unchanged
  --check                 write nothing: exit 0 when the files are as they would be
                          written, 1 when stale (the policy, modprobe.d or the tree changed)
  --set NAME=M1,M2...     a device NAME that loads several modules (repeatable)
  --binary PATH           the hooks run PATH, the single executable (npm run build:binary)
  --wrapper PATH          the hooks run the wrapper at PATH (default
                          /usr/local/libexec/kmodload/kmodload-hook, which
                          hook-config --install-wrapper and install-node write)
  --unload-on-stop        each device also gets a poststop hook that releases the
                          container's hold and unloads what nobody holds
  --timeout SEC           the runtime's timeout for each hook (default 30)
  --policy FILE           the policy to publish (repeatable; default the host's
                          /etc/kmodload/policy.conf + policy.d/*.conf), passed to the hooks
  --log FILE|none         the hooks' log (default /var/log/kmodload/hook.log)
  --state-dir DIR         passed to the hooks
${TREE_OPTIONS}
                            (read here and passed to the hooks)
  -n, --dry-run             passed to the hooks: they plan and log, load nothing
  -h, --help                show this help

Exit status: 0 written (or fresh with --check), 1 stale (--check), 2 bad usage, 3 a --set
the hook would refuse for every container, 4 the policy, modprobe.d or the module tree
unreadable or invalid, or a spec file that cannot be written, 70 internal error.
`;
