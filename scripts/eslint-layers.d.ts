// Types of scripts/eslint-layers.js for its test (the script itself stays plain JS: ESLint loads it).
import type { ESLint } from 'eslint';

export const ALLOWED: Record<string, string[]>;
declare const plugin: ESLint.Plugin;
export default plugin;
