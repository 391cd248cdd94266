// playmill GTA V recorder: scenario parameters, their JSON form and their validation (game-independent).
// The ranges are the same as gta_bridge/schema/recording-v1.schema.json ($defs/scenario) and the Python
// importer's gta_bridge.scenario; a test compares them (PlaymillFakeRun.exe --print-limits).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Playmill.GtaRecorder
{
    /// <summary>The camera rig: offset in the body frame (x right, y forward, z up, metres) and rotation offset.</summary>
    public sealed class CameraRig
    {
        public string View = "first_person";
        public Vec3d OffsetM = new Vec3d(0.0, 0.5, 0.6);
        /// <summary>GTA Euler [pitch, roll, yaw] in degrees, applied in the body frame.</summary>
        public Vec3d RotationOffsetDeg = new Vec3d(0.0, 0.0, 0.0);
        public Vec3d PedOffsetM = new Vec3d(0.0, 0.15, 0.65);
        public double FovDeg = 60.0;
    }

    public sealed class Scenario
    {
        public const double VehicleDensityMin = 0.1, VehicleDensityMax = 2.0;
        public const double PedDensityMin = 0.2, PedDensityMax = 1.5;
        public const double TimeOfDayMin = 0.0, TimeOfDayMaxExclusive = 24.0;
        public const double FovMin = 30.0, FovMax = 120.0;
        public const double SpeedMin = 1.0, SpeedMax = 60.0;
        public const double DurationMaxS = 86400.0;
        public const double SyncDurationMinMs = 200.0, SyncDurationMaxMs = 10000.0;
        public const double RadiusMin = 1.0, RadiusMax = 100.0;
        public const int ChatMsMin = 500, ChatMsMax = 60000;
        public const double PhaseSMin = 5.0, PhaseSMax = 3600.0;

        public static readonly string[] Weathers = {
            "extrasunny", "clear", "clouds", "smog", "foggy", "overcast", "rain", "thunder", "clearing",
            "neutral", "snow", "blizzard", "snowlight", "xmas", "halloween"
        };
        public static readonly string[] Behaviours = { "drive_waypoints", "drive_wander", "walk_interact", "mixed" };
        public static readonly string[] Views = { "first_person", "third_person" };

        public string Name = "session";
        public int Seed;
        public string Weather = "clear";
        public double TimeOfDayH = 12.0;
        public bool FreezeTime = true;
        public double VehicleDensity = 1.0;
        public double PedDensity = 1.0;
        public string Behaviour = "drive_wander";
        public string VehicleModel = "asea";
        public double SpeedMps = 12.0;
        public List<Vec3d> WaypointsM = new List<Vec3d>();
        public CameraRig Camera = new CameraRig();
        public double DurationS = 60.0;
        public double SyncDurationMs = 1500.0;
        public bool SyncAtEnd = true;
        public double InteractRadiusM = 15.0;
        public int ChatMs = 4000;
        public double DriveS = 60.0;
        public double WalkS = 30.0;

        public bool NeedsVehicle
        {
            get { return Behaviour == "drive_waypoints" || Behaviour == "drive_wander" || Behaviour == "mixed"; }
        }

        /// <summary>Parses and validates a scenario JSON object. Every problem is appended to errors as
        /// "scenario.KEY: ..." with the allowed range or values; the result is null when there is any.</summary>
        public static Scenario FromJson(object json, List<string> errors)
        {
            var d = json as Dictionary<string, object>;
            if (d == null) { errors.Add("scenario: must be a JSON object"); return null; }
            var s = new Scenario();
            var known = new HashSet<string> {
                "name", "seed", "weather", "time_of_day_h", "freeze_time", "vehicle_density", "ped_density",
                "behaviour", "vehicle_model", "speed_mps", "waypoints_m", "camera", "duration_s", "sync", "interact"
            };
            foreach (string k in d.Keys)
                if (!known.Contains(k)) errors.Add("scenario." + k + ": unknown key (allowed: " + string.Join(", ", Sorted(known)) + ")");
            foreach (string k in new[] { "name", "seed", "weather", "time_of_day_h", "vehicle_density", "ped_density", "behaviour", "camera", "duration_s" })
                if (!d.ContainsKey(k)) errors.Add("scenario." + k + ": missing");

            s.Name = Str(d, "name", s.Name, errors);
            double seed = Num(d, "seed", 0, errors);
            if (seed != Math.Floor(seed) || seed < 0 || seed > int.MaxValue)
                errors.Add("scenario.seed: " + F(seed) + " must be an integer in [0, 2147483647]");
            else s.Seed = (int)seed;
            s.Weather = Str(d, "weather", s.Weather, errors);
            s.TimeOfDayH = Num(d, "time_of_day_h", s.TimeOfDayH, errors);
            s.FreezeTime = Bool(d, "freeze_time", s.FreezeTime, errors);
            s.VehicleDensity = Num(d, "vehicle_density", s.VehicleDensity, errors);
            s.PedDensity = Num(d, "ped_density", s.PedDensity, errors);
            s.Behaviour = Str(d, "behaviour", s.Behaviour, errors);
            s.VehicleModel = Str(d, "vehicle_model", s.VehicleModel, errors);
            s.SpeedMps = Num(d, "speed_mps", s.SpeedMps, errors);
            s.DurationS = Num(d, "duration_s", s.DurationS, errors);
            object wps;
            if (d.TryGetValue("waypoints_m", out wps))
            {
                var list = wps as List<object>;
                if (list == null) errors.Add("scenario.waypoints_m: must be a list of [x, y, z]");
                else for (int i = 0; i < list.Count; i++)
                {
                    Vec3d v;
                    if (TryVec(list[i], out v)) s.WaypointsM.Add(v);
                    else errors.Add("scenario.waypoints_m[" + i + "]: must be [x, y, z] numbers (metres)");
                }
            }
            object cam;
            if (d.TryGetValue("camera", out cam))
            {
                var c = cam as Dictionary<string, object>;
                if (c == null) errors.Add("scenario.camera: must be an object");
                else
                {
                    foreach (string k in c.Keys)
                        if (k != "view" && k != "offset_m" && k != "rotation_offset_deg" && k != "ped_offset_m" && k != "fov_deg")
                            errors.Add("scenario.camera." + k + ": unknown key (allowed: fov_deg, offset_m, ped_offset_m, rotation_offset_deg, view)");
                    s.Camera.View = Str(c, "view", s.Camera.View, errors, "scenario.camera.");
                    s.Camera.FovDeg = Num(c, "fov_deg", s.Camera.FovDeg, errors, "scenario.camera.");
                    s.Camera.OffsetM = VecKey(c, "offset_m", s.Camera.OffsetM, errors);
                    s.Camera.RotationOffsetDeg = VecKey(c, "rotation_offset_deg", s.Camera.RotationOffsetDeg, errors);
                    s.Camera.PedOffsetM = VecKey(c, "ped_offset_m", s.Camera.PedOffsetM, errors);
                    foreach (string k in new[] { "view", "offset_m", "rotation_offset_deg", "fov_deg" })
                        if (!c.ContainsKey(k)) errors.Add("scenario.camera." + k + ": missing");
                }
            }
            object sync;
            if (d.TryGetValue("sync", out sync))
            {
                var c = sync as Dictionary<string, object>;
                if (c == null) errors.Add("scenario.sync: must be an object");
                else
                {
                    s.SyncDurationMs = Num(c, "duration_ms", s.SyncDurationMs, errors, "scenario.sync.");
                    s.SyncAtEnd = Bool(c, "at_end", s.SyncAtEnd, errors, "scenario.sync.");
                }
            }
            object inter;
            if (d.TryGetValue("interact", out inter))
            {
                var c = inter as Dictionary<string, object>;
                if (c == null) errors.Add("scenario.interact: must be an object");
                else
                {
                    s.InteractRadiusM = Num(c, "radius_m", s.InteractRadiusM, errors, "scenario.interact.");
                    double chat = Num(c, "chat_ms", s.ChatMs, errors, "scenario.interact.");
                    if (chat != Math.Floor(chat)) errors.Add("scenario.interact.chat_ms: must be an integer");
                    s.ChatMs = (int)chat;
                    s.DriveS = Num(c, "drive_s", s.DriveS, errors, "scenario.interact.");
                    s.WalkS = Num(c, "walk_s", s.WalkS, errors, "scenario.interact.");
                }
            }
            s.Validate(errors);
            return errors.Count == 0 ? s : null;
        }

        /// <summary>Range and value checks; appends one message per problem.</summary>
        public void Validate(List<string> errors)
        {
            if (Name == null || !Regex.IsMatch(Name, "^[A-Za-z0-9_.-]{1,64}$"))
                errors.Add("scenario.name: '" + Name + "' must be 1-64 characters of A-Z a-z 0-9 _ . -");
            if (Array.IndexOf(Weathers, Weather) < 0)
                errors.Add("scenario.weather: '" + Weather + "' is not a weather (allowed: " + string.Join(", ", Weathers) + ")");
            if (Array.IndexOf(Behaviours, Behaviour) < 0)
                errors.Add("scenario.behaviour: '" + Behaviour + "' is not a behaviour (allowed: " + string.Join(", ", Behaviours) + ")");
            if (Array.IndexOf(Views, Camera.View) < 0)
                errors.Add("scenario.camera.view: '" + Camera.View + "' is not a view (allowed: first_person, third_person)");
            Range("scenario.vehicle_density", VehicleDensity, VehicleDensityMin, VehicleDensityMax, errors);
            Range("scenario.ped_density", PedDensity, PedDensityMin, PedDensityMax, errors);
            if (!(TimeOfDayH >= TimeOfDayMin && TimeOfDayH < TimeOfDayMaxExclusive))
                errors.Add("scenario.time_of_day_h: " + F(TimeOfDayH) + " is outside the allowed range [0, 24) hours");
            Range("scenario.camera.fov_deg", Camera.FovDeg, FovMin, FovMax, errors);
            Range("scenario.speed_mps", SpeedMps, SpeedMin, SpeedMax, errors);
            if (!(DurationS > 0 && DurationS <= DurationMaxS))
                errors.Add("scenario.duration_s: " + F(DurationS) + " is outside the allowed range (0, 86400] seconds");
            Range("scenario.sync.duration_ms", SyncDurationMs, SyncDurationMinMs, SyncDurationMaxMs, errors);
            Range("scenario.interact.radius_m", InteractRadiusM, RadiusMin, RadiusMax, errors);
            Range("scenario.interact.chat_ms", ChatMs, ChatMsMin, ChatMsMax, errors);
            Range("scenario.interact.drive_s", DriveS, PhaseSMin, PhaseSMax, errors);
            Range("scenario.interact.walk_s", WalkS, PhaseSMin, PhaseSMax, errors);
            if (string.IsNullOrEmpty(VehicleModel)) errors.Add("scenario.vehicle_model: must not be empty");
        }

        static void Range(string key, double v, double lo, double hi, List<string> errors)
        {
            if (!(v >= lo && v <= hi))
                errors.Add(key + ": " + F(v) + " is outside the allowed range [" + F(lo) + ", " + F(hi) + "]");
        }

        /// <summary>Writes the scenario object of the recording header.</summary>
        public void WriteJson(JsonWriter w)
        {
            w.BeginObject();
            w.Key("name").Str(Name);
            w.Key("seed").Int(Seed);
            w.Key("weather").Str(Weather);
            w.Key("time_of_day_h").Num(TimeOfDayH);
            w.Key("freeze_time").Bool(FreezeTime);
            w.Key("vehicle_density").Num(VehicleDensity);
            w.Key("ped_density").Num(PedDensity);
            w.Key("behaviour").Str(Behaviour);
            w.Key("vehicle_model").Str(VehicleModel);
            w.Key("speed_mps").Num(SpeedMps);
            w.Key("waypoints_m").BeginArray();
            foreach (Vec3d p in WaypointsM) w.Vec(p);
            w.EndArray();
            w.Key("camera").BeginObject();
            w.Key("view").Str(Camera.View);
            w.Key("offset_m").Vec(Camera.OffsetM);
            w.Key("rotation_offset_deg").Vec(Camera.RotationOffsetDeg);
            w.Key("ped_offset_m").Vec(Camera.PedOffsetM);
            w.Key("fov_deg").Num(Camera.FovDeg);
            w.EndObject();
            w.Key("duration_s").Num(DurationS);
            w.Key("sync").BeginObject().Key("duration_ms").Num(SyncDurationMs).Key("at_end").Bool(SyncAtEnd).EndObject();
            w.Key("interact").BeginObject();
            w.Key("radius_m").Num(InteractRadiusM);
            w.Key("chat_ms").Int(ChatMs);
            w.Key("drive_s").Num(DriveS);
            w.Key("walk_s").Num(WalkS);
            w.EndObject();
            w.EndObject();
        }

        /// <summary>The limits as a JSON object (for the cross-language check against the schema).</summary>
        public static string LimitsJson()
        {
            var sb = new StringBuilder();
            var w = new JsonWriter(sb);
            w.BeginObject();
            w.Key("vehicle_density").BeginArray().Num(VehicleDensityMin).Num(VehicleDensityMax).EndArray();
            w.Key("ped_density").BeginArray().Num(PedDensityMin).Num(PedDensityMax).EndArray();
            w.Key("time_of_day_h").BeginArray().Num(TimeOfDayMin).Num(TimeOfDayMaxExclusive).EndArray();
            w.Key("fov_deg").BeginArray().Num(FovMin).Num(FovMax).EndArray();
            w.Key("speed_mps").BeginArray().Num(SpeedMin).Num(SpeedMax).EndArray();
            w.Key("duration_s_max").Num(DurationMaxS);
            w.Key("sync_duration_ms").BeginArray().Num(SyncDurationMinMs).Num(SyncDurationMaxMs).EndArray();
            w.Key("weather").BeginArray();
            foreach (string x in Weathers) w.Str(x);
            w.EndArray();
            w.Key("behaviour").BeginArray();
            foreach (string x in Behaviours) w.Str(x);
            w.EndArray();
            w.EndObject();
            return sb.ToString();
        }

        static string F(double v) { return v.ToString("R", CultureInfo.InvariantCulture); }

        static List<string> Sorted(IEnumerable<string> xs)
        {
            var l = new List<string>(xs);
            l.Sort(StringComparer.Ordinal);
            return l;
        }

        static string Str(Dictionary<string, object> d, string key, string dflt, List<string> errors, string prefix = "scenario.")
        {
            object v;
            if (!d.TryGetValue(key, out v)) return dflt;
            var s = v as string;
            if (s == null) { errors.Add(prefix + key + ": must be a string"); return dflt; }
            return s;
        }

        static double Num(Dictionary<string, object> d, string key, double dflt, List<string> errors, string prefix = "scenario.")
        {
            object v;
            if (!d.TryGetValue(key, out v)) return dflt;
            if (!(v is double)) { errors.Add(prefix + key + ": must be a number"); return dflt; }
            return (double)v;
        }

        static bool Bool(Dictionary<string, object> d, string key, bool dflt, List<string> errors, string prefix = "scenario.")
        {
            object v;
            if (!d.TryGetValue(key, out v)) return dflt;
            if (!(v is bool)) { errors.Add(prefix + key + ": must be true or false"); return dflt; }
            return (bool)v;
        }

        static bool TryVec(object o, out Vec3d v)
        {
            v = new Vec3d();
            var l = o as List<object>;
            if (l == null || l.Count != 3 || !(l[0] is double) || !(l[1] is double) || !(l[2] is double)) return false;
            v = new Vec3d((double)l[0], (double)l[1], (double)l[2]);
            return true;
        }

        static Vec3d VecKey(Dictionary<string, object> d, string key, Vec3d dflt, List<string> errors)
        {
            object o;
            if (!d.TryGetValue(key, out o)) return dflt;
            Vec3d v;
            if (TryVec(o, out v)) return v;
            errors.Add("scenario.camera." + key + ": must be [x, y, z] numbers");
            return dflt;
        }
    }
}
