// `linewatch devices add|remove|list` — manages the devices file (salted password hashes).
import { Command, Option } from 'commander';
import { addAccount, generatePassword, listAccounts, MIN_PASSWORD_LENGTH, removeAccount, ROLES, type Role } from '../../broker/accounts.js';
import { loadConfig } from '../../config/load.js';
import { UserError } from '../errors.js';

interface FileOptions {
  config?: string;
  devicesFile?: string;
}

function devicesFileOf(options: FileOptions): string {
  return loadConfig(options.config, { broker: { devicesFile: options.devicesFile } }).broker.devicesFile;
}

function withFileOptions(command: Command): Command {
  return command
    .option('--config <file>', 'linewatch.yaml to read broker.devicesFile from')
    .option('--devices-file <file>', 'the devices file (default: broker.devicesFile, .linewatch/devices.json)');
}

export function registerDevices(program: Command): void {
  const devices = program.command('devices').description('manage the accounts (devices and services) the broker accepts');

  withFileOptions(
    devices
      .command('add <username>')
      .description('add or replace an account; devices are named LINE/DEVICE, e.g. A/conv-1')
      .addOption(new Option('--role <role>', 'what the account may do').choices([...ROLES]).default('device'))
      .option('--password <password>', `its password (at least ${MIN_PASSWORD_LENGTH} characters, two kinds of characters, not a repetition or sequence); generated and printed once if left out`),
  ).action(async (username: string, options: FileOptions & { role: Role; password?: string }) => {
    const file = devicesFileOf(options);
    const generated = options.password === undefined;
    const password = options.password ?? generatePassword();
    try {
      await addAccount(file, { username, password, role: options.role });
    } catch (err) {
      throw new UserError(`cannot add ${username}: ${(err as Error).message}${generated ? '' : '; or leave out --password to have a strong one generated'}`);
    }
    console.log(`added ${username} (role ${options.role}) to ${file}`);
    if (generated) console.log(`password: ${password}\n(shown only once: only its salted hash is stored)`);
  });

  withFileOptions(devices.command('remove <username>').description('remove an account; its clients are refused from their next CONNECT')).action(
    (username: string, options: FileOptions) => {
      const file = devicesFileOf(options);
      if (!removeAccount(file, username)) throw new UserError(`there is no account "${username}" in ${file}; see \`linewatch devices list\``);
      console.log(`removed ${username} from ${file}`);
    },
  );

  withFileOptions(devices.command('list').description('list the accounts (never their passwords)')).action((options: FileOptions) => {
    const file = devicesFileOf(options);
    const accounts = listAccounts(file);
    if (accounts.length === 0) {
      console.log(`no accounts in ${file}; add one with \`linewatch devices add LINE/DEVICE --role device\``);
      return;
    }
    const width = Math.max(...accounts.map((a) => a.username.length), 8);
    console.log(`${'USERNAME'.padEnd(width)}  ${'ROLE'.padEnd(9)}  CREATED`);
    for (const a of accounts) console.log(`${a.username.padEnd(width)}  ${a.role.padEnd(9)}  ${a.created}`);
  });
}
