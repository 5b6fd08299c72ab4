// The Save button of a settings form (EngineSettings, HistorySettings): sends
// the form's changes, hands the engine's answer back to the form, and keeps
// what the button and the note under it show while and after it waits.
import type { SettingsRequest, SettingsResponse } from '../../../engine/common/api-types';
import type { KilnApi } from './api';
import { describeAnswer } from './engine-settings';

export class SettingsSave {
  busy = $state(false);
  error = $state<string | null>(null);
  /** What the engine said about the last save (applied now, saved, restart required). */
  answer = $state<ReturnType<typeof describeAnswer> | null>(null);

  constructor(private readonly api: Pick<KilnApi, 'updateSettings'>) {}

  /** Sends `body`; `adopt` takes the settings as the engine now has them. Never throws: a failure shows as `error`. */
  async send(body: SettingsRequest, adopt: (s: SettingsResponse) => void): Promise<boolean> {
    this.busy = true;
    this.error = null;
    this.answer = null;
    try {
      const res = await this.api.updateSettings(body);
      adopt(res);
      this.answer = describeAnswer(res);
      return true;
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      return false;
    } finally {
      this.busy = false;
    }
  }
}
