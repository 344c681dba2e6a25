// Whether a process id is in use: signal 0 checks without sending anything. EPERM means it exists
// but belongs to someone else — alive, too.
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
