// Writes a runc bundle's config.json in the guest: the runtime's default spec (made on the
// host), the hook entries that `kmodload hook-config` printed for this installation, and the
// container's KERNEL_MODULES request.
//   node make-bundle.js TEMPLATE HOOKS_JSON isulad|oci KERNEL_MODULES BUNDLE_DIR [COMMAND...]
// COMMAND replaces the container's process (default: print "container-ran" and exit).
'use strict';
const fs = require('fs');
const path = require('path');

const [template, hooksFile, format, request, bundle, ...command] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(template, 'utf8'));
const printed = JSON.parse(fs.readFileSync(hooksFile, 'utf8'));
// iSulad's hookspec has the stages at top level (prestart, as the seed's hook ran);
// the OCI snippet is the `hooks` member itself (createRuntime).
config.hooks = format === 'isulad' ? printed : printed.hooks;
config.process.env = config.process.env.filter((e) => !e.startsWith('KERNEL_MODULES='));
config.process.env.push(`KERNEL_MODULES=${request}`);
if (command.length > 0) config.process.args = command;
fs.mkdirSync(bundle, { recursive: true });
fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(config, null, 2));
