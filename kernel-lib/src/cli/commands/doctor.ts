/** `gmt-lab doctor`: the backend in use, versions, and why each faster backend is not in use. */
import { doctor, formatDoctor } from '../../backend';
import { defineCommand } from '../command';

export default defineCommand({
  name: 'doctor',
  summary: 'Show the tfjs backend in use, library versions, and why faster backends are not in use',
  description: 'GMT_BACKEND=<name> forces a backend (tfjs-node-gpu, tfjs-node, webgpu, wasm, cpu).',
  options: {
    json: { type: 'boolean', summary: 'print the report as JSON (nothing else on stdout)' },
  },
  async run({ options }, io) {
    const report = await doctor();
    io.stdout(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctor(report)}\n`);
    return 0;
  },
});
