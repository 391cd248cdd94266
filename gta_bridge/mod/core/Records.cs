// playmill GTA V recorder: plain data records (game-independent).
// Units: metres, m/s, degrees, milliseconds. Frame: GTA world (right-handed, Z up, X east, Y north).
using System;
using System.Collections.Generic;

namespace Playmill.GtaRecorder
{
    /// <summary>A float32 3-vector as the game returns it (metres, m/s or degrees).</summary>
    public struct Vec3f
    {
        public float X, Y, Z;
        public Vec3f(float x, float y, float z) { X = x; Y = y; Z = z; }
        public static Vec3f NaN { get { return new Vec3f(float.NaN, float.NaN, float.NaN); } }
        public bool IsFinite
        {
            get { return !(float.IsNaN(X) || float.IsNaN(Y) || float.IsNaN(Z) || float.IsInfinity(X) || float.IsInfinity(Y) || float.IsInfinity(Z)); }
        }
    }

    /// <summary>A float64 3-vector.</summary>
    public struct Vec3d
    {
        public double X, Y, Z;
        public Vec3d(double x, double y, double z) { X = x; Y = y; Z = z; }
        public static Vec3d From(Vec3f v) { return new Vec3d(v.X, v.Y, v.Z); }
        public Vec3f ToFloat() { return new Vec3f((float)X, (float)Y, (float)Z); }
        public double DistanceXY(Vec3d o) { double dx = X - o.X, dy = Y - o.Y; return Math.Sqrt(dx * dx + dy * dy); }
    }

    /// <summary>The player's vehicle this tick.</summary>
    public sealed class VehicleState
    {
        public string Model = "";
        public Vec3f Position = Vec3f.NaN;
        /// <summary>GTA Euler [pitch, roll, yaw] degrees (rotation order 2 = YXZ).</summary>
        public Vec3f Rotation = Vec3f.NaN;
        public float QX = float.NaN, QY = float.NaN, QZ = float.NaN, QW = float.NaN;
        public Vec3f Velocity = Vec3f.NaN;
        public float Speed = float.NaN;
        public float ForwardSpeed = float.NaN;
        public float Heading = float.NaN;
        public float Steering = float.NaN;
        public float Throttle = float.NaN;
        public float Brake = float.NaN;
        public int Gear;
        public float Rpm = float.NaN;
        public bool Collided;
    }

    /// <summary>The player ped this tick.</summary>
    public sealed class PlayerState
    {
        public bool Exists;
        public bool IsDead;
        public Vec3f Position = Vec3f.NaN;
        public Vec3f Rotation = Vec3f.NaN;
        public Vec3f Velocity = Vec3f.NaN;
        public float Heading = float.NaN;
        public float Speed = float.NaN;
        public bool InVehicle;
    }

    /// <summary>The rendering camera this tick.</summary>
    public sealed class CameraState
    {
        public Vec3f Position = Vec3f.NaN;
        public Vec3f Rotation = Vec3f.NaN;
        public float Fov = float.NaN;
        public string ViewMode = "gameplay_third_person";
        public string Rig = "gameplay";
    }

    /// <summary>Controls pressed by a human player this tick (scripted tasks press none).</summary>
    public sealed class ControlState
    {
        public bool Accelerate, Brake, Left, Right, Handbrake, MoveForward, MoveBack, MoveLeft, MoveRight, Sprint;
    }

    /// <summary>Something that happened this tick (behaviour changes, waypoints, collisions).</summary>
    public sealed class TickEvent
    {
        public string Type;
        public int Index = -1;
        public int Ped;
        public bool HasPosition;
        public Vec3d Position;

        public TickEvent(string type) { Type = type; }
    }

    /// <summary>Everything logged for one tick (one JSON line and one CSV row).</summary>
    public sealed class TickRecord
    {
        public int Tick;
        public int Frame;
        public int GameTimeMs;
        public double WallTimeMs;
        public float FrameTimeMs = float.NaN;
        public string Phase = "record";
        public string Mode = "hold";
        public VehicleState Vehicle;
        public PlayerState Player = new PlayerState();
        public CameraState Camera = new CameraState();
        public ControlState Controls = new ControlState();
        public string Weather = "clear";
        public string WeatherGame = "";
        public double TimeOfDayH = double.NaN;
        public double VehicleDensity;
        public double PedDensity;
        /// <summary>Code of the sync marker drawn on this tick's frame, -1 when none.</summary>
        public int SyncCode = -1;
        public List<TickEvent> Events = new List<TickEvent>();
    }

    /// <summary>Wall clock of the session: a monotonic high-resolution timer and UTC time.</summary>
    public interface IClock
    {
        /// <summary>Monotonic milliseconds (any origin).</summary>
        double NowMs { get; }
        DateTime UtcNow { get; }
    }
}
