// Validates gateway resources against the real CRD schemas that the kubernetes-models packages
// ship (Gateway API, Envoy Gateway, Istio). Usage: node validate.mjs FILE... (multi-document
// YAML, e.g. the output of `kubectl kustomize`). Core Kubernetes kinds are left to
// kubernetes-validate; a resource of a group none of the packages covers is listed as
// unchecked (kgateway has no package; its resources are checked by the descriptor tests). Exit
// 1 on the first invalid resource, naming it and every schema error.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

const packages = {
  'gateway.networking.k8s.io': '@kubernetes-models/gateway-api',
  'gateway.envoyproxy.io': '@kubernetes-models/envoy-gateway',
  'security.istio.io': '@kubernetes-models/istio',
  'networking.istio.io': '@kubernetes-models/istio',
};

let failed = false;
for (const file of process.argv.slice(2)) {
  for (const document of parseAllDocuments(readFileSync(file, 'utf8'))) {
    if (document.errors.length) {
      console.error(`${file}: not YAML: ${document.errors[0].message}`);
      process.exit(1);
    }
    const object = document.toJS();
    if (!object || !object.apiVersion || !object.kind) continue;
    const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : ['', object.apiVersion];
    const name = `${object.kind} ${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? '?'} (${object.apiVersion})`;
    const pkg = packages[group];
    if (!pkg) {
      if (group.includes('.') && !group.endsWith('k8s.io')) console.log(`unchecked: ${name}: no schema package for ${group}`);
      continue;
    }
    let Model;
    try {
      Model = (await import(`${pkg}/${group}/${version}/${object.kind}`))[object.kind];
    } catch (e) {
      console.error(`${file}: ${name}: no such kind in ${pkg}: ${e.message}`);
      failed = true;
      continue;
    }
    try {
      new Model(object).validate();
      console.log(`valid: ${name}`);
    } catch (e) {
      const details = (e.errors ?? []).map((d) => `  ${d.instancePath || '/'} ${d.message}${d.params ? ' ' + JSON.stringify(d.params) : ''}`);
      console.error(`${file}: ${name}: invalid\n${details.join('\n') || '  ' + e.message}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
