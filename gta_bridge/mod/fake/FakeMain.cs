// playmill GTA V recorder: runs one recording session against FakeGame under Mono.
//   mono PlaymillFakeRun.exe --settings FILE --out DIR [--seed N] [--fps F] [--max-ticks N] [--nan-tick N]
//   mono PlaymillFakeRun.exe --print-limits
// Writes DIR/<session_id>/behaviour.jsonl and ticks.csv (the mod's own writer) plus fake_frames.jsonl: one line
// per logged tick {"frame": Game.FrameCount, "rects": [[cx, cy, w, h, r, g, b, a], ...]} with the rectangles the
// mod drew on that frame, for rendering the video the importer will align. Prints the session folder.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace Playmill.GtaRecorder.Fake
{
    public static class FakeMain
    {
        public static int Main(string[] args)
        {
            string settings = null, outDir = null;
            int seed = 0, maxTicks = 1000000, nanTick = -1;
            double fps = 60.0;
            for (int i = 0; i < args.Length; i++)
            {
                string a = args[i];
                if (a == "--print-limits") { Console.WriteLine(Scenario.LimitsJson()); return 0; }
                if (i + 1 >= args.Length) { Console.Error.WriteLine("missing value after " + a); return 2; }
                string v = args[++i];
                if (a == "--settings") settings = v;
                else if (a == "--out") outDir = v;
                else if (a == "--seed") seed = int.Parse(v, CultureInfo.InvariantCulture);
                else if (a == "--fps") fps = double.Parse(v, CultureInfo.InvariantCulture);
                else if (a == "--max-ticks") maxTicks = int.Parse(v, CultureInfo.InvariantCulture);
                else if (a == "--nan-tick") nanTick = int.Parse(v, CultureInfo.InvariantCulture);
                else { Console.Error.WriteLine("unknown option " + a); return 2; }
            }
            if (settings == null || outDir == null)
            {
                Console.Error.WriteLine("usage: PlaymillFakeRun.exe --settings FILE --out DIR [--seed N] [--fps F] [--max-ticks N] [--nan-tick N]");
                return 2;
            }
            var errors = new List<string>();
            RecorderConfig cfg = RecorderConfig.FromJson(File.ReadAllText(settings), outDir, errors);
            if (cfg == null)
            {
                Console.Error.WriteLine(settings + ": invalid settings:");
                foreach (string e in errors) Console.Error.WriteLine("  " + e);
                return 3;
            }
            var clock = new FakeClock();
            var game = new FakeGame(clock, seed, fps);
            string id = RecorderSession.NewSessionId(clock.UtcNow, new Random(seed));
            var session = new RecorderSession(game, cfg.Scenario, clock, outDir, id, cfg.FlushEvery);
            StreamWriter frames = null;
            int ticks = 0;
            try
            {
                while (!session.Done && ticks < maxTicks)
                {
                    game.Advance();
                    int before = session.TicksLogged;
                    game.InjectNaN = before == nanTick;
                    session.Tick();
                    if (game.DensityCallsThisTick != 5)
                        throw new InvalidOperationException("density natives were not applied on frame " + game.FrameCount);
                    if (session.TicksLogged == before) continue;  // setup tick: nothing logged
                    if (frames == null)
                    {
                        frames = new StreamWriter(Path.Combine(session.SessionDir, "fake_frames.jsonl"), false, new UTF8Encoding(false));
                        frames.NewLine = "\n";
                    }
                    var sb = new StringBuilder();
                    var w = new JsonWriter(sb);
                    w.BeginObject().Key("frame").Int(game.FrameCount).Key("rects").BeginArray();
                    foreach (MarkerRect r in game.DrawnThisTick)
                        w.BeginArray().Num(r.Cx).Num(r.Cy).Num(r.W).Num(r.H).Int(r.R).Int(r.G).Int(r.B).Int(r.A).EndArray();
                    w.EndArray().EndObject();
                    frames.WriteLine(sb.ToString());
                    ticks++;
                }
                if (!session.Done) session.Finish(clock.NowMs, "aborted");
            }
            finally
            {
                if (frames != null) frames.Dispose();
            }
            Console.WriteLine(session.SessionDir);
            return 0;
        }
    }
}
