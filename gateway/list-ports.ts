// `linewatch ports`: serial ports as serialport sees them. On Linux its listing reads udev
// (`udevadm`); without it we say so and how to get it, instead of printing an empty list.
import { execFile } from 'node:child_process';
import { SerialPort } from 'serialport';

export interface PortListing {
  ports: { path: string; manufacturer?: string; serialNumber?: string; vendorId?: string; productId?: string }[];
  /** Set when listing is unavailable, with what to do about it. */
  unavailable?: string;
}

export const UDEV_HINT = 'listing serial ports needs `udevadm` (Debian/Ubuntu: `sudo apt-get install udev`); you can still pass a port path such as /dev/ttyUSB0 directly';

function hasUdevadm(): Promise<boolean> {
  return new Promise((resolve) => execFile('udevadm', ['--version'], (err) => resolve(!err)));
}

export async function listSerialPorts(): Promise<PortListing> {
  if (process.platform === 'linux' && !(await hasUdevadm())) return { ports: [], unavailable: UDEV_HINT };
  try {
    const ports = await SerialPort.list();
    return { ports: ports.map((p) => ({ path: p.path, manufacturer: p.manufacturer, serialNumber: p.serialNumber, vendorId: p.vendorId, productId: p.productId })) };
  } catch (err) {
    return { ports: [], unavailable: `listing serial ports failed: ${(err as Error).message}; ${UDEV_HINT}` };
  }
}
