// playmill GTA V recorder: one recording session, driven by one call per game tick (game-independent).
// Phases: setup (scenario, vehicle, camera; not logged) -> marker (start sync marker, vehicle held) ->
// record (behaviours) -> end_marker (optional) -> done (footer written, camera released).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;

namespace Playmill.GtaRecorder
{
    public sealed class RecorderSession
    {
        public const string ModVersion = "1.0.0";

        enum Phase { Setup, Marker, Record, EndMarker, Done }

        readonly IGameWorld _w;
        readonly Scenario _s;
        readonly IClock _clock;
        readonly string _sessionId;
        readonly string _dir;
        readonly BehaviourPlanner _planner;
        readonly int _flushEvery;
        RecordingWriter _writer;
        Phase _phase = Phase.Setup;
        double _t0Ms;
        double _phaseStartMs;
        int _tick;
        bool _cameraOnVehicle;
        bool _cameraAttached;
        readonly List<TickEvent> _pending = new List<TickEvent>();

        /// <summary>One session writing into outputRoot/sessionId. flushEvery: ticks between file flushes.</summary>
        public RecorderSession(IGameWorld world, Scenario scenario, IClock clock, string outputRoot, string sessionId, int flushEvery)
        {
            _w = world;
            _s = scenario;
            _clock = clock;
            _sessionId = sessionId;
            _dir = Path.Combine(outputRoot, sessionId);
            _planner = new BehaviourPlanner(scenario);
            _flushEvery = flushEvery;
        }

        public bool Done { get { return _phase == Phase.Done; } }
        public string SessionDir { get { return _dir; } }
        public int TicksLogged { get { return _tick; } }

        /// <summary>A session id from the UTC start time and a random suffix: 20250102T030405Z-1a2b3c4d.</summary>
        public static string NewSessionId(DateTime utc, Random rng)
        {
            return utc.ToUniversalTime().ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture) + "-"
                   + rng.Next(0, int.MaxValue).ToString("x8", CultureInfo.InvariantCulture);
        }

        /// <summary>Run once per game tick.</summary>
        public void Tick()
        {
            if (_phase == Phase.Done) return;
            // density natives only last one frame: every tick, in every phase
            _w.ApplyDensitiesThisFrame((float)_s.VehicleDensity, (float)_s.PedDensity);
            _w.HideHudThisFrame();

            if (_phase == Phase.Setup)
            {
                if (!_w.PlayerReady) return;
                Setup();
                return;
            }

            double now = _clock.NowMs;
            PlayerState player = _w.ReadPlayer();
            if (!player.Exists || player.IsDead) { Finish(now, "player_dead"); return; }

            bool onVehicle = player.InVehicle;
            if (!_cameraAttached || onVehicle != _cameraOnVehicle)
            {
                _w.AttachCamera(_s.Camera, onVehicle);
                _cameraAttached = true;
                _cameraOnVehicle = onVehicle;
            }
            _w.UpdateCamera(_s.Camera, onVehicle);

            var rec = new TickRecord();
            rec.Events.AddRange(_pending);
            _pending.Clear();
            if (_tick == 0) rec.Events.Insert(0, new TickEvent("session_start"));

            switch (_phase)
            {
                case Phase.Marker:
                    rec.Phase = "marker";
                    rec.Mode = "hold";
                    if (_tick == 0) rec.Events.Add(new TickEvent("marker_start"));
                    DrawMarker(rec);
                    if (now - _phaseStartMs >= _s.SyncDurationMs)
                    {
                        rec.Events.Add(new TickEvent("marker_end"));
                        _w.HoldVehicle(false);
                        _phase = Phase.Record;
                        _phaseStartMs = now;
                        _planner.Start(_w, now, _pending);  // its events go to the next tick
                    }
                    break;
                case Phase.Record:
                    rec.Phase = "record";
                    _planner.Step(_w, now, _pending);
                    rec.Mode = _planner.Mode;
                    if (now - _phaseStartMs >= _s.DurationS * 1000.0)
                    {
                        if (_s.SyncAtEnd) { _phase = Phase.EndMarker; _phaseStartMs = now; _pending.Add(new TickEvent("marker_start")); }
                        else { Log(rec, now, player); Finish(now, "duration"); return; }
                    }
                    break;
                case Phase.EndMarker:
                    rec.Phase = "end_marker";
                    rec.Mode = _planner.Mode;
                    DrawMarker(rec);
                    if (now - _phaseStartMs >= _s.SyncDurationMs)
                    {
                        rec.Events.Add(new TickEvent("marker_end"));
                        Log(rec, now, player);
                        Finish(now, "duration");
                        return;
                    }
                    break;
            }
            Log(rec, now, player);
        }

        void Setup()
        {
            _w.SetWeather(_s.Weather);
            _w.SetTimeOfDay(_s.TimeOfDayH, _s.FreezeTime);
            if (_s.NeedsVehicle && _w.EnsurePlayerVehicle(_s.VehicleModel))
                _pending.Add(new TickEvent("vehicle_spawned"));
            _w.HoldVehicle(true);
            _writer = new RecordingWriter(_dir, _flushEvery);
            _phase = Phase.Marker;
            _t0Ms = _clock.NowMs;
            _phaseStartMs = _t0Ms;
            var h = new SessionHeader();
            h.SessionId = _sessionId;
            h.ModVersion = ModVersion;
            h.GameBuild = _w.GameBuild;
            h.StartedUtc = _clock.UtcNow;
            h.Scenario = _s;
            _writer.WriteHeader(h);
        }

        void DrawMarker(TickRecord rec)
        {
            int code = _tick & (SyncMarker.Modulus - 1);
            foreach (MarkerRect r in SyncMarker.Rects(code)) _w.DrawRect(r);
            rec.SyncCode = code;
        }

        void Log(TickRecord rec, double now, PlayerState player)
        {
            rec.Tick = _tick;
            rec.Frame = _w.FrameCount;
            rec.GameTimeMs = _w.GameTimeMs;
            rec.WallTimeMs = now - _t0Ms;
            rec.FrameTimeMs = _w.LastFrameTimeS * 1000.0f;
            rec.Player = player;
            rec.Vehicle = player.InVehicle ? _w.ReadVehicle() : null;
            rec.Camera = _w.ReadCamera();
            rec.Controls = _w.ReadControls();
            rec.Weather = _s.Weather;
            rec.WeatherGame = _w.ReadWeatherGame();
            rec.TimeOfDayH = _w.ReadTimeOfDayHours();
            rec.VehicleDensity = _s.VehicleDensity;
            rec.PedDensity = _s.PedDensity;
            if (rec.Vehicle != null && rec.Vehicle.Collided) rec.Events.Add(new TickEvent("collision"));
            _writer.WriteTick(rec);
            _tick++;
        }

        /// <summary>Ends the session now (script aborted, player dead): footer, camera released, files closed.</summary>
        public void Finish(double nowMs, string reason)
        {
            if (_phase == Phase.Done) return;
            if (_writer != null)
            {
                _writer.WriteFooter(_tick, _clock.UtcNow, nowMs - _t0Ms, reason);
                _writer.Dispose();
            }
            _w.HoldVehicle(false);
            _w.ReleaseCamera();
            _phase = Phase.Done;
        }

        public void Abort() { Finish(_clock.NowMs, "aborted"); }
    }
}
