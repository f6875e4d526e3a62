/**
 * Bad command-line usage: an unknown flag, a missing argument, a value out of range. The CLI
 * prints the message and the command's usage, and exits with code 2.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';

  constructor(
    message: string,
    /** The command whose usage to show (`run`, `simulate`…); the general usage when absent. */
    readonly command?: string,
  ) {
    super(message);
  }
}
