// Hand-made plans over the real 6.1 tree's files, shaped like the planner's output for the
// seed's request (ip_vs needs nf_conntrack, which needs libcrc32c, whose softdep is crc32c).

import path from 'node:path';
import type { Plan, Probe, ProbeStep, RequestPlan } from '../../src/planner/plan';
import { classifyInstallCommand } from '../../src/planner/rules';
import type { KernelTree } from './trees';

export const FILES: Record<string, string> = {
  crc32c_intel: 'kernel/arch/x86/crypto/crc32c-intel.ko',
  crc32c_generic: 'kernel/crypto/crc32c_generic.ko',
  libcrc32c: 'kernel/lib/libcrc32c.ko',
  nf_defrag_ipv4: 'kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko',
  nf_defrag_ipv6: 'kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko',
  nf_conntrack: 'kernel/net/netfilter/nf_conntrack.ko',
  ip_vs: 'kernel/net/netfilter/ipvs/ip_vs.ko',
  ip_vs_wrr: 'kernel/net/netfilter/ipvs/ip_vs_wrr.ko',
  dummy: 'kernel/drivers/net/dummy.ko',
};

export function insmod(tree: KernelTree, name: string, fields: Partial<ProbeStep> = {}): ProbeStep {
  const file = FILES[name];
  if (!file) throw new Error(`no fixture file for ${name}`);
  return {
    name,
    kind: 'insmod',
    path: path.join(tree.moduleDir, file),
    options: '',
    required: true,
    target: false,
    ...fields,
  };
}

/** An install rule's step, with its command classified as the planner does. */
export function install(name: string, command: string, fields: Partial<ProbeStep> = {}): ProbeStep {
  return {
    name,
    kind: 'install',
    command,
    installAction: classifyInstallCommand(command),
    options: '',
    required: true,
    target: false,
    ...fields,
  };
}

/** The steps modprobe takes for ip_vs on the 6.1 tree. */
export function ipVsSteps(tree: KernelTree): ProbeStep[] {
  return [
    insmod(tree, 'crc32c_intel', { required: false }),
    insmod(tree, 'crc32c_generic', { required: false }),
    insmod(tree, 'libcrc32c'),
    insmod(tree, 'nf_defrag_ipv4'),
    insmod(tree, 'nf_defrag_ipv6'),
    insmod(tree, 'nf_conntrack'),
    insmod(tree, 'ip_vs', { target: true }),
  ];
}

export function ipVsWrrSteps(tree: KernelTree): ProbeStep[] {
  return [
    ...ipVsSteps(tree).map((s) => ({ ...s, target: false })),
    insmod(tree, 'ip_vs_wrr', { target: true }),
  ];
}

export function probe(module: string, steps: ProbeStep[]): Probe {
  return { module, steps };
}

export function request(name: string, probes: Probe[]): RequestPlan {
  return { request: name, probes };
}

export function plan(tree: KernelTree, requests: RequestPlan[]): Plan {
  return { moduleDir: tree.moduleDir, kernelVersion: tree.version, requests };
}

export function ipVsPlan(tree: KernelTree): Plan {
  return plan(tree, [request('ip_vs', [probe('ip_vs', ipVsSteps(tree))])]);
}
