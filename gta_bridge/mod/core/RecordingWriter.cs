// playmill GTA V recorder: writes behaviour.jsonl and ticks.csv (game-independent).
// Format: gta_bridge/schema/recording-v1.schema.json. Lines end with '\n'; files are UTF-8 without BOM.
using System;
using System.Globalization;
using System.IO;
using System.Text;

namespace Playmill.GtaRecorder
{
    /// <summary>What the header line says about the session.</summary>
    public sealed class SessionHeader
    {
        public string SessionId;
        public string ModVersion;
        public string GameBuild;
        public DateTime StartedUtc;
        public Scenario Scenario;
    }

    public sealed class RecordingWriter : IDisposable
    {
        public const string Schema = "playmill.gta.recording";
        public const int Version = 1;
        public const string JsonlName = "behaviour.jsonl";
        public const string CsvName = "ticks.csv";
        /// <summary>ticks.csv columns, in order ($defs/csv_row x-column-order in the schema).</summary>
        public static readonly string[] CsvColumns = {
            "tick", "frame", "game_time_ms", "wall_time_ms", "phase", "mode", "in_vehicle",
            "pos_x_m", "pos_y_m", "pos_z_m", "rot_pitch_deg", "rot_roll_deg", "rot_yaw_deg",
            "speed_mps", "forward_speed_mps", "steering_deg", "throttle", "brake", "gear",
            "cam_x_m", "cam_y_m", "cam_z_m", "cam_pitch_deg", "cam_roll_deg", "cam_yaw_deg",
            "cam_fov_deg", "sync_code", "event_count"
        };

        readonly StreamWriter _jsonl;
        readonly StreamWriter _csv;
        readonly int _flushEvery;
        int _sinceFlush;
        bool _closed;

        public string Directory { get; private set; }

        /// <summary>Creates dir and opens both files. flushEvery: ticks between flushes (1 = every tick).</summary>
        public RecordingWriter(string dir, int flushEvery)
        {
            Directory = dir;
            System.IO.Directory.CreateDirectory(dir);
            var utf8 = new UTF8Encoding(false);
            _jsonl = new StreamWriter(Path.Combine(dir, JsonlName), false, utf8);
            _jsonl.NewLine = "\n";
            _csv = new StreamWriter(Path.Combine(dir, CsvName), false, utf8);
            _csv.NewLine = "\n";
            _flushEvery = Math.Max(1, flushEvery);
            _csv.WriteLine(string.Join(",", CsvColumns));
        }

        public static string Iso(DateTime utc)
        {
            return utc.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
        }

        public static string HeaderJson(SessionHeader h)
        {
            var sb = new StringBuilder();
            var w = new JsonWriter(sb);
            w.BeginObject();
            w.Key("record").Str("header");
            w.Key("schema").Str(Schema);
            w.Key("version").Int(Version);
            w.Key("session_id").Str(h.SessionId);
            w.Key("mod_version").Str(h.ModVersion);
            w.Key("game_build").Str(h.GameBuild);
            w.Key("shvdn_api").Str("3");
            w.Key("started_utc").Str(Iso(h.StartedUtc));
            w.Key("scenario");
            h.Scenario.WriteJson(w);
            w.Key("sync_marker").BeginObject();
            w.Key("kind").Str("binary_grid");
            w.Key("rows").Int(SyncMarker.Rows);
            w.Key("cols").Int(SyncMarker.Cols);
            w.Key("bits").Int(SyncMarker.Bits);
            w.Key("duration_ms").Num(h.Scenario.SyncDurationMs);
            w.Key("at_end").Bool(h.Scenario.SyncAtEnd);
            w.EndObject();
            w.Key("files").BeginObject().Key("csv").Str(CsvName).EndObject();
            w.EndObject();
            return sb.ToString();
        }

        public static string TickJson(TickRecord t)
        {
            var sb = new StringBuilder(1024);
            var w = new JsonWriter(sb);
            w.BeginObject();
            w.Key("record").Str("tick");
            w.Key("tick").Int(t.Tick);
            w.Key("frame").Int(t.Frame);
            w.Key("game_time_ms").Int(t.GameTimeMs);
            w.Key("wall_time_ms").Num(Math.Round(t.WallTimeMs, 4));
            w.Key("frame_time_ms").Num(t.FrameTimeMs);
            w.Key("phase").Str(t.Phase);
            w.Key("mode").Str(t.Mode);
            w.Key("vehicle");
            if (t.Vehicle == null) w.Null();
            else
            {
                VehicleState v = t.Vehicle;
                w.BeginObject();
                w.Key("model").Str(v.Model);
                w.Key("position_m").Vec(v.Position);
                w.Key("rotation_deg").Vec(v.Rotation);
                w.Key("quaternion_xyzw").BeginArray().Num(v.QX).Num(v.QY).Num(v.QZ).Num(v.QW).EndArray();
                w.Key("velocity_mps").Vec(v.Velocity);
                w.Key("speed_mps").Num(v.Speed);
                w.Key("forward_speed_mps").Num(v.ForwardSpeed);
                w.Key("heading_deg").Num(v.Heading);
                w.Key("steering_deg").Num(v.Steering);
                w.Key("throttle").Num(v.Throttle);
                w.Key("brake").Num(v.Brake);
                w.Key("gear").Int(v.Gear);
                w.Key("rpm").Num(v.Rpm);
                w.Key("collided").Bool(v.Collided);
                w.EndObject();
            }
            PlayerState p = t.Player;
            w.Key("player").BeginObject();
            w.Key("position_m").Vec(p.Position);
            w.Key("rotation_deg").Vec(p.Rotation);
            w.Key("heading_deg").Num(p.Heading);
            w.Key("velocity_mps").Vec(p.Velocity);
            w.Key("speed_mps").Num(p.Speed);
            w.Key("in_vehicle").Bool(p.InVehicle);
            w.EndObject();
            CameraState c = t.Camera;
            w.Key("camera").BeginObject();
            w.Key("position_m").Vec(c.Position);
            w.Key("rotation_deg").Vec(c.Rotation);
            w.Key("fov_deg").Num(c.Fov);
            w.Key("view_mode").Str(c.ViewMode);
            w.Key("rig").Str(c.Rig);
            w.EndObject();
            ControlState k = t.Controls;
            w.Key("controls").BeginObject();
            w.Key("accelerate").Bool(k.Accelerate);
            w.Key("brake").Bool(k.Brake);
            w.Key("left").Bool(k.Left);
            w.Key("right").Bool(k.Right);
            w.Key("handbrake").Bool(k.Handbrake);
            w.Key("move_forward").Bool(k.MoveForward);
            w.Key("move_back").Bool(k.MoveBack);
            w.Key("move_left").Bool(k.MoveLeft);
            w.Key("move_right").Bool(k.MoveRight);
            w.Key("sprint").Bool(k.Sprint);
            w.EndObject();
            w.Key("env").BeginObject();
            w.Key("weather").Str(t.Weather);
            w.Key("weather_game").Str(t.WeatherGame);
            w.Key("time_of_day_h").Num(t.TimeOfDayH);
            w.Key("vehicle_density").Num(t.VehicleDensity);
            w.Key("ped_density").Num(t.PedDensity);
            w.EndObject();
            w.Key("sync_code");
            if (t.SyncCode < 0) w.Null(); else w.Int(t.SyncCode);
            w.Key("events").BeginArray();
            foreach (TickEvent e in t.Events)
            {
                w.BeginObject();
                w.Key("type").Str(e.Type);
                if (e.Index >= 0) w.Key("index").Int(e.Index);
                if (e.Ped != 0) w.Key("ped").Int(e.Ped);
                if (e.HasPosition) w.Key("position_m").Vec(e.Position);
                w.EndObject();
            }
            w.EndArray();
            w.EndObject();
            return sb.ToString();
        }

        public static string TickCsv(TickRecord t)
        {
            bool inVeh = t.Vehicle != null && t.Player.InVehicle;
            Vec3f pos = inVeh ? t.Vehicle.Position : t.Player.Position;
            Vec3f rot = inVeh ? t.Vehicle.Rotation : t.Player.Rotation;
            float speed = inVeh ? t.Vehicle.Speed : t.Player.Speed;
            var cells = new string[] {
                t.Tick.ToString(CultureInfo.InvariantCulture),
                t.Frame.ToString(CultureInfo.InvariantCulture),
                t.GameTimeMs.ToString(CultureInfo.InvariantCulture),
                Format.Double(Math.Round(t.WallTimeMs, 4), ""),
                t.Phase, t.Mode, inVeh ? "1" : "0",
                Format.Float(pos.X, ""), Format.Float(pos.Y, ""), Format.Float(pos.Z, ""),
                Format.Float(rot.X, ""), Format.Float(rot.Y, ""), Format.Float(rot.Z, ""),
                Format.Float(speed, ""),
                inVeh ? Format.Float(t.Vehicle.ForwardSpeed, "") : "",
                inVeh ? Format.Float(t.Vehicle.Steering, "") : "",
                inVeh ? Format.Float(t.Vehicle.Throttle, "") : "",
                inVeh ? Format.Float(t.Vehicle.Brake, "") : "",
                inVeh ? t.Vehicle.Gear.ToString(CultureInfo.InvariantCulture) : "",
                Format.Float(t.Camera.Position.X, ""), Format.Float(t.Camera.Position.Y, ""), Format.Float(t.Camera.Position.Z, ""),
                Format.Float(t.Camera.Rotation.X, ""), Format.Float(t.Camera.Rotation.Y, ""), Format.Float(t.Camera.Rotation.Z, ""),
                Format.Float(t.Camera.Fov, ""),
                t.SyncCode < 0 ? "" : t.SyncCode.ToString(CultureInfo.InvariantCulture),
                t.Events.Count.ToString(CultureInfo.InvariantCulture),
            };
            return string.Join(",", cells);
        }

        public void WriteHeader(SessionHeader h)
        {
            _jsonl.WriteLine(HeaderJson(h));
            Flush();
        }

        public void WriteTick(TickRecord t)
        {
            _jsonl.WriteLine(TickJson(t));
            _csv.WriteLine(TickCsv(t));
            if (++_sinceFlush >= _flushEvery) Flush();
        }

        public void WriteFooter(int ticks, DateTime endedUtc, double wallTimeMs, string reason)
        {
            var sb = new StringBuilder();
            var w = new JsonWriter(sb);
            w.BeginObject();
            w.Key("record").Str("footer");
            w.Key("ticks").Int(ticks);
            w.Key("ended_utc").Str(Iso(endedUtc));
            w.Key("wall_time_ms").Num(Math.Round(wallTimeMs, 4));
            w.Key("reason").Str(reason);
            w.EndObject();
            _jsonl.WriteLine(sb.ToString());
            Flush();
        }

        public void Flush()
        {
            _jsonl.Flush();
            _csv.Flush();
            _sinceFlush = 0;
        }

        public void Dispose()
        {
            if (_closed) return;
            _closed = true;
            _jsonl.Dispose();
            _csv.Dispose();
        }
    }
}
