// playmill GTA V recorder: IGameWorld over ScriptHookVDotNet v3 (the only game-dependent code besides
// PlaymillRecorder.cs). Every ScriptHookVDotNet member used here is declared in stubs/ScriptHookVDotNet3Stubs.cs.
using System;
using System.Collections.Generic;
using GTA;
using GTA.Math;
using GTA.Native;

namespace Playmill.GtaRecorder
{
    public sealed class ShvdnWorld : IGameWorld
    {
        Camera _cam;
        string _camView = "first_person";
        bool _camOnVehicle;
        Vehicle _lastVehicle;
        readonly Dictionary<int, Ped> _peds = new Dictionary<int, Ped>();

        static Ped PlayerPed { get { return Game.Player.Character; } }

        static Vec3f V(Vector3 v) { return new Vec3f(v.X, v.Y, v.Z); }
        static Vector3 G(Vec3d v) { return new Vector3((float)v.X, (float)v.Y, (float)v.Z); }

        public int GameTimeMs { get { return Game.GameTime; } }
        public int FrameCount { get { return Game.FrameCount; } }
        public float LastFrameTimeS { get { return Game.LastFrameTime; } }
        public string GameBuild { get { return Game.Version.ToString(); } }

        public bool PlayerReady
        {
            get { Ped p = PlayerPed; return p != null && p.Exists() && !p.IsDead; }
        }

        public void ApplyDensitiesThisFrame(float vehicleDensity, float pedDensity)
        {
            Function.Call(Hash.SET_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME, vehicleDensity);
            Function.Call(Hash.SET_RANDOM_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME, vehicleDensity);
            Function.Call(Hash.SET_PARKED_VEHICLE_DENSITY_MULTIPLIER_THIS_FRAME, vehicleDensity);
            Function.Call(Hash.SET_PED_DENSITY_MULTIPLIER_THIS_FRAME, pedDensity);
            // (interior multiplier, exterior multiplier)
            Function.Call(Hash.SET_SCENARIO_PED_DENSITY_MULTIPLIER_THIS_FRAME, pedDensity, pedDensity);
        }

        public void HideHudThisFrame()
        {
            Function.Call(Hash.HIDE_HUD_AND_RADAR_THIS_FRAME);
        }

        public void SetWeather(string weather)
        {
            Function.Call(Hash.SET_WEATHER_TYPE_NOW_PERSIST, weather.ToUpperInvariant());
        }

        public void SetTimeOfDay(double hours, bool freeze)
        {
            World.CurrentTimeOfDay = TimeSpan.FromSeconds(Math.Floor(hours * 3600.0));
            Function.Call(Hash.PAUSE_CLOCK, freeze);
        }

        public string ReadWeatherGame() { return World.Weather.ToString(); }

        public double ReadTimeOfDayHours() { return World.CurrentTimeOfDay.TotalHours; }

        public void DrawRect(MarkerRect r)
        {
            Function.Call(Hash.DRAW_RECT, (float)r.Cx, (float)r.Cy, (float)r.W, (float)r.H, r.R, r.G, r.B, r.A, false);
        }

        public bool EnsurePlayerVehicle(string model)
        {
            Ped p = PlayerPed;
            if (p.IsInVehicle())
            {
                _lastVehicle = p.CurrentVehicle;
                return false;
            }
            var m = new Model(model);
            if (!m.Request(10000))
                throw new InvalidOperationException("vehicle model '" + model + "' could not be loaded");
            Vector3 at = p.Position;
            Vehicle v = World.CreateVehicle(m, new Vector3(at.X, at.Y, at.Z), p.Heading);
            m.MarkAsNoLongerNeeded();
            if (v == null) throw new InvalidOperationException("could not create a '" + model + "' next to the player");
            p.SetIntoVehicle(v, VehicleSeat.Driver);
            _lastVehicle = v;
            return true;
        }

        public void HoldVehicle(bool hold)
        {
            Ped p = PlayerPed;
            if (p != null && p.IsInVehicle()) p.CurrentVehicle.IsPositionFrozen = hold;
        }

        public PlayerState ReadPlayer()
        {
            var s = new PlayerState();
            Ped p = PlayerPed;
            s.Exists = p != null && p.Exists();
            if (!s.Exists) return s;
            s.IsDead = p.IsDead;
            s.Position = V(p.Position);
            s.Rotation = V(p.Rotation);
            s.Velocity = V(p.Velocity);
            s.Heading = p.Heading;
            s.Speed = p.Speed;
            s.InVehicle = p.IsInVehicle();
            return s;
        }

        public VehicleState ReadVehicle()
        {
            Ped p = PlayerPed;
            if (p == null || !p.IsInVehicle()) return null;
            Vehicle v = p.CurrentVehicle;
            _lastVehicle = v;
            var s = new VehicleState();
            s.Model = v.DisplayName;
            s.Position = V(v.Position);
            s.Rotation = V(v.Rotation);
            Quaternion q = v.Quaternion;
            s.QX = q.X; s.QY = q.Y; s.QZ = q.Z; s.QW = q.W;
            Vector3 vel = v.Velocity;
            Vector3 fwd = v.ForwardVector;
            s.Velocity = V(vel);
            s.Speed = v.Speed;
            s.ForwardSpeed = vel.X * fwd.X + vel.Y * fwd.Y + vel.Z * fwd.Z;
            s.Heading = v.Heading;
            s.Steering = v.SteeringAngle;
            s.Throttle = v.Throttle;
            s.Brake = v.BrakePower;
            s.Gear = v.CurrentGear;
            s.Rpm = v.CurrentRPM;
            s.Collided = v.HasCollided;
            return s;
        }

        public ControlState ReadControls()
        {
            var c = new ControlState();
            c.Accelerate = Game.IsControlPressed(Control.VehicleAccelerate);
            c.Brake = Game.IsControlPressed(Control.VehicleBrake);
            c.Left = Game.IsControlPressed(Control.VehicleMoveLeftOnly);
            c.Right = Game.IsControlPressed(Control.VehicleMoveRightOnly);
            c.Handbrake = Game.IsControlPressed(Control.VehicleHandbrake);
            c.MoveForward = Game.IsControlPressed(Control.MoveUpOnly);
            c.MoveBack = Game.IsControlPressed(Control.MoveDownOnly);
            c.MoveLeft = Game.IsControlPressed(Control.MoveLeftOnly);
            c.MoveRight = Game.IsControlPressed(Control.MoveRightOnly);
            c.Sprint = Game.IsControlPressed(Control.Sprint);
            return c;
        }

        public void AttachCamera(CameraRig rig, bool onVehicle)
        {
            Ped p = PlayerPed;
            Entity target = onVehicle && p.IsInVehicle() ? (Entity)p.CurrentVehicle : p;
            if (_cam == null)
                _cam = World.CreateCamera(p.Position, new Vector3(0f, 0f, p.Heading), (float)rig.FovDeg);
            _cam.AttachTo(target, G(onVehicle ? rig.OffsetM : rig.PedOffsetM));
            _cam.IsActive = true;
            World.RenderingCamera = _cam;
            _camView = rig.View;
            _camOnVehicle = onVehicle;
        }

        public void UpdateCamera(CameraRig rig, bool onVehicle)
        {
            if (_cam == null) return;
            Ped p = PlayerPed;
            Vec3d body;
            if (onVehicle && p.IsInVehicle())
            {
                Vector3 r = p.CurrentVehicle.Rotation;
                body = new Vec3d(r.X, r.Y, r.Z);
            }
            else body = new Vec3d(0.0, 0.0, p.Heading);
            Vec3d rot = GtaMath.RigRotation(body, rig.RotationOffsetDeg);
            _cam.Rotation = G(rot);
        }

        public CameraState ReadCamera()
        {
            var c = new CameraState();
            if (_cam != null)
            {
                c.Position = V(_cam.Position);
                c.Rotation = V(_cam.Rotation);
                c.Fov = _cam.FieldOfView;
                c.ViewMode = _camView == "first_person" ? "scripted_first_person" : "scripted_third_person";
                c.Rig = _camOnVehicle ? "vehicle" : "ped";
                return c;
            }
            c.Position = V(GameplayCamera.Position);
            c.Rotation = V(GameplayCamera.Rotation);
            c.Fov = GameplayCamera.FieldOfView;
            Ped p = PlayerPed;
            int mode = p != null && p.IsInVehicle()
                ? Function.Call<int>(Hash.GET_FOLLOW_VEHICLE_CAM_VIEW_MODE)
                : Function.Call<int>(Hash.GET_FOLLOW_PED_CAM_VIEW_MODE);
            c.ViewMode = mode == 4 ? "gameplay_first_person" : "gameplay_third_person";  // 4 = first person
            c.Rig = "gameplay";
            return c;
        }

        public void ReleaseCamera()
        {
            World.RenderingCamera = null;
            if (_cam != null)
            {
                _cam.Delete();
                _cam = null;
            }
        }

        public void DriveTo(Vec3d target, double speedMps, double radiusM)
        {
            Ped p = PlayerPed;
            if (!p.IsInVehicle()) return;
            p.Task.DriveTo(p.CurrentVehicle, G(target), (float)radiusM, (float)speedMps, DrivingStyle.Normal);
        }

        public void CruiseWander(double speedMps)
        {
            Ped p = PlayerPed;
            if (!p.IsInVehicle()) return;
            p.Task.CruiseWithVehicle(p.CurrentVehicle, (float)speedMps, DrivingStyle.Normal);
        }

        public int FindNearbyPed(double radiusM, ICollection<int> exclude)
        {
            Ped me = PlayerPed;
            Vector3 at = me.Position;
            Ped best = null;
            double bestD = double.MaxValue;
            foreach (Ped q in World.GetNearbyPeds(me, (float)radiusM))
            {
                if (q == null || !q.Exists() || q.IsDead || !q.IsHuman || q.IsInVehicle() || exclude.Contains(q.Handle)) continue;
                Vector3 o = q.Position;
                double d = Math.Sqrt((o.X - at.X) * (o.X - at.X) + (o.Y - at.Y) * (o.Y - at.Y));
                if (d < bestD) { bestD = d; best = q; }
            }
            if (best == null) return 0;
            _peds[best.Handle] = best;
            return best.Handle;
        }

        public bool TryPedPosition(int ped, out Vec3d position)
        {
            position = new Vec3d();
            Ped q;
            if (!_peds.TryGetValue(ped, out q) || !q.Exists() || q.IsDead) return false;
            Vector3 o = q.Position;
            position = new Vec3d(o.X, o.Y, o.Z);
            return true;
        }

        public void WalkToPed(int ped)
        {
            Ped q;
            if (_peds.TryGetValue(ped, out q) && q.Exists()) PlayerPed.Task.GoTo(q, new Vector3(0f, 1.2f, 0f), 20000);
        }

        public void ChatWithPed(int ped, int durationMs)
        {
            Ped q;
            if (!_peds.TryGetValue(ped, out q) || !q.Exists()) return;
            q.Task.TurnTo(PlayerPed, durationMs);
            PlayerPed.Task.ChatTo(q);
        }

        public void WanderOnFoot() { PlayerPed.Task.WanderAround(); }

        public void LeaveVehicle() { PlayerPed.Task.LeaveVehicle(LeaveVehicleFlags.None); }

        public void EnterLastVehicle()
        {
            if (_lastVehicle != null && _lastVehicle.Exists())
                PlayerPed.Task.EnterVehicle(_lastVehicle, VehicleSeat.Driver, -1, 1f, EnterVehicleFlags.None);
        }
    }
}
