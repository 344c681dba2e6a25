// A command's verdict at a simulated device: rejected (with the reason the device gives), or
// accepted with how to tell it is done (and by when, else it failed). The state it changes
// (setpoints, strategy, stopped, a cleared fault) changes at once; the answer is the model's.
import type { CommandPayload, Strategy } from '../contracts/schemas.js';
import { CONTROLLER_ID, CONVEYOR_MAX_SPEED, Controller, Conveyor, RESET_TEMPERATURE, STRATEGY_CODES, STRATEGY_EFFECT, Station, type Device } from './devices.js';

const SET_SPEED_DEADLINE_MS = 30_000;

export type Verdict = string | { done: () => boolean; deadlineMs?: number; failReason?: string };

/** Returns a rejection reason, or how to tell the command is done. */
export function judgeCommand(d: Device, cmd: CommandPayload, now: number, conveyors: readonly Conveyor[]): Verdict {
  if (cmd.expiresAt < now) return `expired: expiresAt ${cmd.expiresAt} is before the device's time ${now}`;
  const immediately = { done: () => true };
  switch (cmd.action) {
    case 'set_speed': {
      const speed = cmd.params.speed;
      if (typeof speed !== 'number' || !Number.isFinite(speed)) return 'set_speed needs a numeric params.speed in m/min';
      if (speed < 0 || speed > CONVEYOR_MAX_SPEED) return `speed ${speed} m/min is outside 0–${CONVEYOR_MAX_SPEED} m/min, the conveyors' range`;
      if (d instanceof Controller) {
        d.setpoint = speed;
        for (const c of conveyors) c.setpoint = speed;
        return immediately;
      }
      if (d instanceof Conveyor) {
        if (d.state === 'FAULT') return `conveyor is in FAULT (${d.reason ?? 'fault'}); send reset_fault first`;
        d.setpoint = speed;
        return { done: () => Math.abs(d.speed - d.target) < 0.5, deadlineMs: SET_SPEED_DEADLINE_MS, failReason: 'did not reach the speed within 30 s' };
      }
      return `a ${d.type} has no speed; send set_speed to ${CONTROLLER_ID} or a conveyor`;
    }
    case 'set_strategy': {
      const strategy = cmd.params.strategy;
      if (!(d instanceof Controller)) return `only ${CONTROLLER_ID} takes set_strategy`;
      if (typeof strategy !== 'string' || !(strategy in STRATEGY_EFFECT)) return `unknown strategy ${String(strategy)}; use one of ${STRATEGY_CODES.join(', ')}`;
      d.strategy = strategy as Strategy;
      return immediately;
    }
    case 'stop':
      d.stopped = true;
      return immediately;
    case 'start':
      if (d.state === 'FAULT') return `in FAULT (${d.reason ?? 'fault'}); send reset_fault first`;
      d.stopped = false;
      return immediately;
    case 'reset_fault':
      if (d.state !== 'FAULT') return `not in FAULT (state ${d.state})`;
      if (d instanceof Conveyor && d.motorTemp > RESET_TEMPERATURE) {
        return `motor still at ${d.motorTemp.toFixed(1)} °C; let it cool below ${RESET_TEMPERATURE} °C`;
      }
      if (d instanceof Station) d.jammedUntil = -1;
      d.state = 'RUNNING';
      d.reason = undefined;
      return immediately;
  }
}
