// A bench client process: forked by the bench (processes.ts), it runs the
// jobs it is sent one at a time and answers each with JSON over the IPC channel.
import { runJob, type Job } from './jobs';

process.on('message', (msg: { id: number; job: Job }) => {
  runJob(msg.job).then(
    (result) => process.send!({ id: msg.id, result }),
    (err: Error) => process.send!({ id: msg.id, error: err.stack ?? String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
