// playmill GTA V recorder: the session clock over System.Diagnostics.Stopwatch (game-independent).
using System;
using System.Diagnostics;

namespace Playmill.GtaRecorder
{
    public sealed class StopwatchClock : IClock
    {
        readonly Stopwatch _sw = Stopwatch.StartNew();
        public double NowMs { get { return _sw.Elapsed.TotalMilliseconds; } }
        public DateTime UtcNow { get { return DateTime.UtcNow; } }
    }

    /// <summary>The recorder's settings file (scripts/PlaymillRecorder.json):
    /// {"output_dir": "...", "flush_every": 30, "scenario": {...}}.</summary>
    public sealed class RecorderConfig
    {
        public string OutputDir;
        public int FlushEvery = 30;
        public Scenario Scenario;

        public static RecorderConfig FromJson(string text, string defaultOutputDir, System.Collections.Generic.List<string> errors)
        {
            object json;
            try { json = JsonReader.Parse(text); }
            catch (FormatException e) { errors.Add(e.Message); return null; }
            var d = json as System.Collections.Generic.Dictionary<string, object>;
            if (d == null) { errors.Add("settings: must be a JSON object"); return null; }
            var c = new RecorderConfig();
            c.OutputDir = defaultOutputDir;
            object v;
            if (d.TryGetValue("output_dir", out v))
            {
                if (v is string && ((string)v).Length > 0) c.OutputDir = (string)v;
                else errors.Add("settings.output_dir: must be a non-empty string");
            }
            if (d.TryGetValue("flush_every", out v))
            {
                if (v is double && (double)v >= 1 && (double)v <= 10000 && (double)v == Math.Floor((double)v)) c.FlushEvery = (int)(double)v;
                else errors.Add("settings.flush_every: must be an integer in [1, 10000]");
            }
            foreach (string k in d.Keys)
                if (k != "output_dir" && k != "flush_every" && k != "scenario")
                    errors.Add("settings." + k + ": unknown key (allowed: flush_every, output_dir, scenario)");
            if (!d.TryGetValue("scenario", out v)) { errors.Add("settings.scenario: missing"); return null; }
            c.Scenario = Scenario.FromJson(v, errors);
            return errors.Count == 0 ? c : null;
        }
    }
}
