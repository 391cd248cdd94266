// Compile-time stand-in for ScriptHookVDotNet3.dll (ScriptHookVDotNet v3 API), used to check that the
// recorder mod compiles without the game. It declares exactly the namespaces, types and members that
// gta_bridge/mod/PlaymillRecorder.cs and ShvdnWorld.cs use, with the signatures of the real v3 API
// (https://github.com/scripthookvdotnet/scripthookvdotnet, source/scripting_v3). Native hashes are the
// real GTA V values. Nothing here runs: every body throws. Do not ship this assembly; the game loads the
// real ScriptHookVDotNet3.dll.
using System;

namespace GTA.Math
{
    public struct Vector3
    {
        public float X;
        public float Y;
        public float Z;
        public Vector3(float x, float y, float z) { X = x; Y = y; Z = z; }
    }

    public struct Quaternion
    {
        public float X;
        public float Y;
        public float Z;
        public float W;
    }
}

namespace GTA.Native
{
    public enum Hash : ulong
    {
        SET_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME = 0x245A6883D966D537,
        SET_RANDOM_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME = 0xB3B3359379FE77D3,
        SET_PARKED_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME = 0xEAE6DCC7EEE3DB1D,
        SET_PED_DENSITY_MULTIPLIER_THIS_FRAME = 0x95E3D6257B166CF2,
        SET_SCENARIO_PED_DENSITY_MULTIPLIER_THIS_FRAME = 0x7A556143A1C03898,
        HIDE_HUD_AND_RADAR_THIS_FRAME = 0x719FF505F097FD20,
        SET_WEATHER_TYPE_NOW_PERSIST = 0xED712CA327900C8A,
        PAUSE_CLOCK = 0x4055E40BD2DBEC1D,
        DRAW_RECT = 0x3A618A217E5154F0,
        GET_FOLLOW_PED_CAM_VIEW_MODE = 0x8D4D46230B2C353A,
        GET_FOLLOW_VEHICLE_CAM_VIEW_MODE = 0xA4FF579AC0E3AAAE,
    }

    public class InputArgument
    {
        public static implicit operator InputArgument(bool value) { throw new NotImplementedException(); }
        public static implicit operator InputArgument(int value) { throw new NotImplementedException(); }
        public static implicit operator InputArgument(float value) { throw new NotImplementedException(); }
        public static implicit operator InputArgument(string value) { throw new NotImplementedException(); }
    }

    public static class Function
    {
        public static void Call(Hash hash, params InputArgument[] arguments) { throw new NotImplementedException(); }
        public static T Call<T>(Hash hash, params InputArgument[] arguments) { throw new NotImplementedException(); }
    }
}

namespace GTA.UI
{
    public static class Notification
    {
        public static int Show(string message, bool blinking = false) { throw new NotImplementedException(); }
    }
}

namespace GTA
{
    using GTA.Math;

    public abstract class Script
    {
        public Script() { }
        public event EventHandler Tick { add { } remove { } }
        public event EventHandler Aborted { add { } remove { } }
        public int Interval { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
    }

    /// <summary>Game build; only its name (ToString) is used.</summary>
    public enum GameVersion
    {
    }

    public enum Control
    {
        Sprint = 21,
        MoveUpOnly = 32,
        MoveDownOnly = 33,
        MoveLeftOnly = 34,
        MoveRightOnly = 35,
        VehicleMoveLeftOnly = 63,
        VehicleMoveRightOnly = 64,
        VehicleAccelerate = 71,
        VehicleBrake = 72,
        VehicleHandbrake = 76,
    }

    /// <summary>Only its name (ToString) is used.</summary>
    public enum Weather
    {
        Unknown = -1, ExtraSunny, Clear, Clouds, Smog, Foggy, Overcast, Raining, ThunderStorm, Clearing, Neutral,
        Snowing, Blizzard, Snowlight, Christmas,
    }

    public enum DrivingStyle
    {
        Normal = 786603,
    }

    public enum VehicleSeat
    {
        Driver = -1,
    }

    public enum LeaveVehicleFlags
    {
        None = 0,
    }

    public enum EnterVehicleFlags
    {
        None = 0,
    }

    public static class Game
    {
        public static int GameTime { get { throw new NotImplementedException(); } }
        public static int FrameCount { get { throw new NotImplementedException(); } }
        public static float LastFrameTime { get { throw new NotImplementedException(); } }
        public static GameVersion Version { get { throw new NotImplementedException(); } }
        public static Player Player { get { throw new NotImplementedException(); } }
        public static bool IsControlPressed(Control control) { throw new NotImplementedException(); }
    }

    public sealed class Player
    {
        public Ped Character { get { throw new NotImplementedException(); } }
    }

    public struct Model
    {
        public Model(string name) { throw new NotImplementedException(); }
        public bool Request(int timeout) { throw new NotImplementedException(); }
        public void MarkAsNoLongerNeeded() { throw new NotImplementedException(); }
    }

    public abstract class PoolObject
    {
        public int Handle { get { throw new NotImplementedException(); } }
        public abstract bool Exists();
        public abstract void Delete();
    }

    public abstract class Entity : PoolObject
    {
        public override bool Exists() { throw new NotImplementedException(); }
        public override void Delete() { throw new NotImplementedException(); }
        public bool IsDead { get { throw new NotImplementedException(); } }
        public virtual Vector3 Position { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public virtual Vector3 Rotation { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public Quaternion Quaternion { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public Vector3 Velocity { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public float Speed { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public float Heading { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public Vector3 ForwardVector { get { throw new NotImplementedException(); } }
        public bool HasCollided { get { throw new NotImplementedException(); } }
        public bool IsPositionFrozen { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
    }

    public sealed class Ped : Entity
    {
        public TaskInvoker Task { get { throw new NotImplementedException(); } }
        public Vehicle CurrentVehicle { get { throw new NotImplementedException(); } }
        public bool IsHuman { get { throw new NotImplementedException(); } }
        public bool IsInVehicle() { throw new NotImplementedException(); }
        public void SetIntoVehicle(Vehicle vehicle, VehicleSeat seat) { throw new NotImplementedException(); }
    }

    public sealed class Vehicle : Entity
    {
        public string DisplayName { get { throw new NotImplementedException(); } }
        public float SteeringAngle { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public float Throttle { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public float BrakePower { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public int CurrentGear { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public float CurrentRPM { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
    }

    public sealed class Camera : PoolObject
    {
        public override bool Exists() { throw new NotImplementedException(); }
        public override void Delete() { throw new NotImplementedException(); }
        public bool IsActive { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public Vector3 Position { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public Vector3 Rotation { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public float FieldOfView { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public void AttachTo(Entity entity, Vector3 offset) { throw new NotImplementedException(); }
    }

    public static class GameplayCamera
    {
        public static Vector3 Position { get { throw new NotImplementedException(); } }
        public static Vector3 Rotation { get { throw new NotImplementedException(); } }
        public static float FieldOfView { get { throw new NotImplementedException(); } }
    }

    public static class World
    {
        public static Weather Weather { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public static TimeSpan CurrentTimeOfDay { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public static Camera RenderingCamera { get { throw new NotImplementedException(); } set { throw new NotImplementedException(); } }
        public static Camera CreateCamera(Vector3 position, Vector3 rotation, float fov) { throw new NotImplementedException(); }
        public static Vehicle CreateVehicle(Model model, Vector3 position, float heading = 0f) { throw new NotImplementedException(); }
        public static Ped[] GetNearbyPeds(Ped ped, float radius, params Model[] models) { throw new NotImplementedException(); }
    }

    public sealed class TaskInvoker
    {
        public void DriveTo(Vehicle vehicle, Vector3 target, float radius, float speed, DrivingStyle style = DrivingStyle.Normal) { throw new NotImplementedException(); }
        public void CruiseWithVehicle(Vehicle vehicle, float speed, DrivingStyle style = DrivingStyle.Normal) { throw new NotImplementedException(); }
        public void GoTo(Entity target, Vector3 offset = default(Vector3), int timeout = -1) { throw new NotImplementedException(); }
        public void ChatTo(Ped ped) { throw new NotImplementedException(); }
        public void TurnTo(Entity target, int duration = -1) { throw new NotImplementedException(); }
        public void WanderAround() { throw new NotImplementedException(); }
        public void LeaveVehicle(LeaveVehicleFlags flags = LeaveVehicleFlags.None) { throw new NotImplementedException(); }
        public void EnterVehicle(Vehicle vehicle, VehicleSeat seat = (VehicleSeat)(-2), int timeout = -1, float speed = 1f, EnterVehicleFlags flag = EnterVehicleFlags.None) { throw new NotImplementedException(); }
    }
}
