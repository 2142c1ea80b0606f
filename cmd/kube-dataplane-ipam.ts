#!/usr/bin/env node
// The CNI IPAM plugin binary. Imports only the IPAM code: a pod pays for this start.
import { runPlugin } from '../ipam/cni-plugin.js';

runPlugin().then((code) => process.exit(code));
