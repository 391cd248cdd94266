// playmill GTA V recorder: the ScriptHookVDotNet v3 script. Reads scripts/PlaymillRecorder.json, records one
// session (behaviour.jsonl + ticks.csv) into <output_dir>/<session_id>/ and stops (a relative output_dir is
// relative to the scripts folder). Reload scripts (Insert)
// to record another session. See gta_bridge/README.md.
using System;
using System.Collections.Generic;
using System.IO;
using GTA;

namespace Playmill.GtaRecorder
{
    public sealed class PlaymillRecorder : Script
    {
        const string SettingsFile = "PlaymillRecorder.json";
        readonly RecorderSession _session;
        readonly StopwatchClock _clock = new StopwatchClock();
        readonly string _logPath;

        public PlaymillRecorder()
        {
            string dir = Path.GetDirectoryName(typeof(PlaymillRecorder).Assembly.Location);
            _logPath = Path.Combine(dir, "PlaymillRecorder.log");
            string settingsPath = Path.Combine(dir, SettingsFile);
            var errors = new List<string>();
            RecorderConfig cfg = null;
            if (!File.Exists(settingsPath)) errors.Add(settingsPath + ": not found (copy scenario.example.json there)");
            else cfg = RecorderConfig.FromJson(File.ReadAllText(settingsPath), Path.Combine(dir, "PlaymillRecordings"), errors);
            if (cfg == null)
            {
                Report("PlaymillRecorder: not recording, " + SettingsFile + " is invalid:\n  " + string.Join("\n  ", errors.ToArray()));
                return;
            }
            string outputDir = Path.IsPathRooted(cfg.OutputDir) ? cfg.OutputDir : Path.Combine(dir, cfg.OutputDir);
            string id = RecorderSession.NewSessionId(DateTime.UtcNow, new Random());
            _session = new RecorderSession(new ShvdnWorld(), cfg.Scenario, _clock, outputDir, id, cfg.FlushEvery);
            Interval = 0;  // run every game frame: one Tick event per rendered frame
            Tick += OnTick;
            Aborted += OnAborted;
            Report("PlaymillRecorder: recording '" + cfg.Scenario.Name + "' to " + _session.SessionDir);
        }

        void OnTick(object sender, EventArgs e)
        {
            if (_session == null || _session.Done) return;
            try
            {
                _session.Tick();
                if (_session.Done) Report("PlaymillRecorder: finished " + _session.SessionDir + " (" + _session.TicksLogged + " ticks)");
            }
            catch (Exception ex)
            {
                _session.Finish(_clock.NowMs, "error");
                Report("PlaymillRecorder: stopped by an error: " + ex);
            }
        }

        void OnAborted(object sender, EventArgs e)
        {
            if (_session != null) _session.Abort();
        }

        void Report(string message)
        {
            try { File.AppendAllText(_logPath, DateTime.UtcNow.ToString("o") + " " + message + Environment.NewLine); }
            catch (IOException) { }
            GTA.UI.Notification.Show(message.Length > 99 ? message.Substring(0, 99) : message);
        }
    }
}
