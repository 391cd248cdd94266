// playmill GTA V recorder: a fake game for running the recorder under Mono without GTA V.
// A flat world in GTA's frame (X east, Y north, Z up, metres): a kinematic bicycle-model car that drives to
// targets, a walking player, a few standing NPCs, and a clock that advances one jittered frame per tick.
// It keeps what the mod draws (the sync marker rectangles) so the Python side can render the video frames.
using System;
using System.Collections.Generic;

namespace Playmill.GtaRecorder.Fake
{
    /// <summary>The fake clock: advanced by FakeGame one frame at a time.</summary>
    public sealed class FakeClock : IClock
    {
        public double Ms;
        public DateTime Start = new DateTime(2025, 1, 1, 12, 0, 0, DateTimeKind.Utc);
        public double NowMs { get { return Ms; } }
        public DateTime UtcNow { get { return Start.AddMilliseconds(Ms); } }
    }

    public sealed class FakeGame : IGameWorld
    {
        const double Wheelbase = 2.7;         // m
        const double MaxSteerDeg = 35.0;
        const double SteerRateDps = 120.0;    // how fast the wheels turn, deg/s
        const double WalkSpeed = 1.4;         // m/s
        const double Deg = Math.PI / 180.0;

        readonly FakeClock _clock;
        readonly Random _rng;
        readonly double _frameMs;
        int _frame = 1000;
        int _gameMs = 500000;
        float _lastFrameS = 1f / 60f;

        // vehicle (GTA frame)
        bool _hasVehicle;
        double _vx, _vy, _vh;                 // position m, heading deg (counter-clockwise from north)
        double _speed, _steer, _throttle, _brake;
        bool _frozen;
        // player
        bool _inVehicle;
        double _px, _py, _ph;
        double _pSpeed;
        // tasks
        enum Task { None, Drive, Cruise, WalkTo, Chat, Wander, Leave, Enter }
        Task _task = Task.None;
        double _tx, _ty, _targetSpeed, _taskUntilMs;
        int _taskPed;
        // camera
        bool _camActive;
        bool _camOnVehicle;
        CameraRig _rig;
        Vec3d _camRot;
        // world
        readonly Dictionary<int, double[]> _npcs = new Dictionary<int, double[]>();
        public string Weather = "";
        public double TimeOfDayH = 12.0;
        public bool ClockPaused;
        public float VehicleDensitySet = float.NaN, PedDensitySet = float.NaN;
        public int DensityCallsThisTick;
        public readonly List<MarkerRect> DrawnThisTick = new List<MarkerRect>();
        /// <summary>When set, the vehicle reports a NaN forward speed this tick (tests the non-finite path).</summary>
        public bool InjectNaN;

        public FakeGame(FakeClock clock, int seed, double fps)
        {
            _clock = clock;
            _rng = new Random(seed);
            _frameMs = 1000.0 / fps;
            _ph = 30.0;
            for (int i = 0; i < 12; i++)
            {
                double a = _rng.NextDouble() * 2 * Math.PI, r = 6 + _rng.NextDouble() * 30;
                _npcs[101 + i] = new[] { r * Math.Cos(a), r * Math.Sin(a) };
            }
        }

        /// <summary>Advances the world by one frame (call before the session's Tick).</summary>
        public void Advance()
        {
            DrawnThisTick.Clear();
            DensityCallsThisTick = 0;
            double dt = _frameMs * (1.0 + 0.08 * (_rng.NextDouble() - 0.5));
            _clock.Ms += dt;
            _gameMs += (int)Math.Round(dt);
            _frame++;
            _lastFrameS = (float)(dt / 1000.0);
            Step(dt / 1000.0);
        }

        static double Wrap180(double a)
        {
            double r = (a + 180.0) % 360.0;
            if (r < 0) r += 360.0;
            return r - 180.0;
        }

        /// <summary>GTA heading (degrees, counter-clockwise from north) of the direction (dx, dy).</summary>
        static double HeadingTo(double dx, double dy) { return Math.Atan2(-dx, dy) / Deg; }

        void Step(double dt)
        {
            if (_now() > _taskUntilMs && (_task == Task.Leave || _task == Task.Enter))
            {
                if (_task == Task.Leave) { _inVehicle = false; _px = _vx + 1.8 * Math.Cos(_vh * Deg); _py = _vy + 1.8 * Math.Sin(_vh * Deg); _ph = _vh; }
                else { _inVehicle = true; }
                _task = Task.None;
            }
            if (_hasVehicle)
            {
                double steerTarget = 0, throttle = 0, brake = 0;
                if (_inVehicle && (_task == Task.Drive || _task == Task.Cruise) && !_frozen)
                {
                    double dx = _tx - _vx, dy = _ty - _vy;
                    if (_task == Task.Cruise && dx * dx + dy * dy < 100) NewCruiseTarget();
                    double err = Wrap180(HeadingTo(_tx - _vx, _ty - _vy) - _vh);
                    steerTarget = Math.Max(-MaxSteerDeg, Math.Min(MaxSteerDeg, 1.2 * err));
                    double want = Math.Abs(err) > 60 ? Math.Min(_targetSpeed, 6.0) : _targetSpeed;
                    if (_speed < want - 0.5) throttle = 1.0;
                    else if (_speed > want + 1.0) brake = 0.6;
                    else throttle = 0.3;
                }
                else if (_inVehicle && _speed > 0.05) brake = 1.0;
                double ds = steerTarget - _steer, lim = SteerRateDps * dt;
                _steer += Math.Max(-lim, Math.Min(lim, ds));
                _throttle = throttle;
                _brake = brake;
                if (_frozen) { _speed = 0; }
                else
                {
                    double acc = 4.0 * throttle - 8.0 * brake * Math.Sign(_speed) - 0.02 * _speed * Math.Abs(_speed) - 0.15 * Math.Sign(_speed);
                    double ns = _speed + acc * dt;
                    if (Math.Sign(ns) != Math.Sign(_speed) && throttle == 0) ns = 0;
                    _speed = ns;
                    _vh += (_speed * Math.Tan(_steer * Deg) / Wheelbase) * dt / Deg;
                    _vh = GtaMath.Wrap360(_vh);
                    _vx += -_speed * Math.Sin(_vh * Deg) * dt;
                    _vy += _speed * Math.Cos(_vh * Deg) * dt;
                }
            }
            if (!_inVehicle)
            {
                _pSpeed = 0;
                if (_task == Task.WalkTo || _task == Task.Wander || _task == Task.Enter)
                {
                    double tx = _tx, ty = _ty;
                    if (_task == Task.WalkTo) { double[] n = _npcs[_taskPed]; tx = n[0]; ty = n[1]; }
                    if (_task == Task.Enter) { tx = _vx; ty = _vy; }
                    double dx = tx - _px, dy = ty - _py, d = Math.Sqrt(dx * dx + dy * dy);
                    if (_task == Task.Enter && d <= 1.2 && _taskUntilMs > _clock.Ms + 1500)
                        _taskUntilMs = _clock.Ms + 1500;  // at the door: get in
                    if (d > 1.2)
                    {
                        _ph = GtaMath.Wrap360(HeadingTo(dx, dy));
                        double step = Math.Min(d - 1.2, WalkSpeed * dt);
                        _px += dx / d * step;
                        _py += dy / d * step;
                        _pSpeed = step / dt;
                    }
                    else if (_task == Task.Wander) NewWanderTarget();
                }
            }
            else { _px = _vx; _py = _vy; _ph = _vh; }
        }

        double _now() { return _clock.Ms; }

        void NewCruiseTarget()
        {
            double a = _rng.NextDouble() * 2 * Math.PI, r = 60 + _rng.NextDouble() * 60;
            _tx = _vx + r * Math.Cos(a);
            _ty = _vy + r * Math.Sin(a);
        }

        void NewWanderTarget()
        {
            double a = _rng.NextDouble() * 2 * Math.PI, r = 5 + _rng.NextDouble() * 10;
            _tx = _px + r * Math.Cos(a);
            _ty = _py + r * Math.Sin(a);
        }

        public int GameTimeMs { get { return _gameMs; } }
        public int FrameCount { get { return _frame; } }
        public float LastFrameTimeS { get { return _lastFrameS; } }
        public string GameBuild { get { return "fake_game"; } }
        public bool PlayerReady { get { return _frame > 1002; } }

        public void ApplyDensitiesThisFrame(float vehicleDensity, float pedDensity)
        {
            VehicleDensitySet = vehicleDensity;
            PedDensitySet = pedDensity;
            DensityCallsThisTick += 5;
        }

        public void HideHudThisFrame() { }
        public void SetWeather(string weather) { Weather = weather; }
        public void SetTimeOfDay(double hours, bool freeze) { TimeOfDayH = Math.Floor(hours * 3600.0) / 3600.0; ClockPaused = freeze; }
        public string ReadWeatherGame() { return Weather.Length == 0 ? "Unknown" : char.ToUpperInvariant(Weather[0]) + Weather.Substring(1); }
        public double ReadTimeOfDayHours() { return TimeOfDayH; }
        public void DrawRect(MarkerRect rect) { DrawnThisTick.Add(rect); }

        public bool EnsurePlayerVehicle(string model)
        {
            if (_inVehicle) return false;
            _hasVehicle = true;
            _inVehicle = true;
            _vx = _px; _vy = _py; _vh = _ph;
            return true;
        }

        public void HoldVehicle(bool hold) { _frozen = hold && _inVehicle; }

        public PlayerState ReadPlayer()
        {
            var s = new PlayerState();
            s.Exists = true;
            s.InVehicle = _inVehicle;
            s.Position = new Vec3f((float)_px, (float)_py, _inVehicle ? 0.5f : 1.0f);
            s.Heading = (float)_ph;
            s.Rotation = new Vec3f(0f, 0f, (float)Wrap180(_ph));
            double v = _inVehicle ? _speed : _pSpeed;
            Vec3d f = GtaMath.HeadingForward(_ph);
            s.Velocity = new Vec3f((float)(v * f.X), (float)(v * f.Y), 0f);
            s.Speed = (float)Math.Abs(v);
            return s;
        }

        public VehicleState ReadVehicle()
        {
            if (!_inVehicle) return null;
            var s = new VehicleState();
            s.Model = "ASEA";
            s.Position = new Vec3f((float)_vx, (float)_vy, 0.5f);
            double yaw = Wrap180(_vh);
            s.Rotation = new Vec3f(0f, 0f, (float)yaw);
            s.QX = 0f; s.QY = 0f; s.QZ = (float)Math.Sin(yaw * Deg / 2); s.QW = (float)Math.Cos(yaw * Deg / 2);
            Vec3d f = GtaMath.HeadingForward(_vh);
            s.Velocity = new Vec3f((float)(_speed * f.X), (float)(_speed * f.Y), 0f);
            s.Speed = (float)Math.Abs(_speed);
            s.ForwardSpeed = InjectNaN ? float.NaN : (float)_speed;
            s.Heading = (float)_vh;
            s.Steering = (float)_steer;
            s.Throttle = (float)_throttle;
            s.Brake = (float)_brake;
            s.Gear = _speed < -0.1 ? 0 : 1 + Math.Min(4, (int)(Math.Abs(_speed) / 8.0));
            s.Rpm = (float)Math.Min(1.0, 0.2 + 0.8 * ((Math.Abs(_speed) % 8.0) / 8.0));
            s.Collided = false;
            return s;
        }

        public ControlState ReadControls() { return new ControlState(); }

        public void AttachCamera(CameraRig rig, bool onVehicle)
        {
            _camActive = true;
            _camOnVehicle = onVehicle;
            _rig = rig;
        }

        public void UpdateCamera(CameraRig rig, bool onVehicle)
        {
            Vec3d body = onVehicle ? new Vec3d(0, 0, Wrap180(_vh)) : new Vec3d(0, 0, _ph);
            _camRot = GtaMath.RigRotation(body, rig.RotationOffsetDeg);
        }

        public CameraState ReadCamera()
        {
            var c = new CameraState();
            if (!_camActive) return c;
            Vec3d pos, rot;
            if (_camOnVehicle) { pos = new Vec3d(_vx, _vy, 0.5); rot = new Vec3d(0, 0, Wrap180(_vh)); }
            else { pos = new Vec3d(_px, _py, 1.0); rot = new Vec3d(0, 0, _ph); }
            Vec3d at = GtaMath.RigPosition(pos, rot, _camOnVehicle ? _rig.OffsetM : _rig.PedOffsetM);
            c.Position = at.ToFloat();
            c.Rotation = _camRot.ToFloat();
            c.Fov = (float)_rig.FovDeg;
            c.ViewMode = _rig.View == "first_person" ? "scripted_first_person" : "scripted_third_person";
            c.Rig = _camOnVehicle ? "vehicle" : "ped";
            return c;
        }

        public void ReleaseCamera() { _camActive = false; }

        public void DriveTo(Vec3d target, double speedMps, double radiusM)
        {
            _task = Task.Drive; _tx = target.X; _ty = target.Y; _targetSpeed = speedMps;
        }

        public void CruiseWander(double speedMps)
        {
            _task = Task.Cruise; _targetSpeed = speedMps;
            NewCruiseTarget();
        }

        public int FindNearbyPed(double radiusM, ICollection<int> exclude)
        {
            int best = 0;
            double bestD = double.MaxValue;
            foreach (KeyValuePair<int, double[]> kv in _npcs)
            {
                if (exclude.Contains(kv.Key)) continue;
                double dx = kv.Value[0] - _px, dy = kv.Value[1] - _py, d = Math.Sqrt(dx * dx + dy * dy);
                if (d <= radiusM && d < bestD) { bestD = d; best = kv.Key; }
            }
            return best;
        }

        public bool TryPedPosition(int ped, out Vec3d position)
        {
            double[] n;
            position = new Vec3d();
            if (!_npcs.TryGetValue(ped, out n)) return false;
            position = new Vec3d(n[0], n[1], 1.0);
            return true;
        }

        public void WalkToPed(int ped) { _task = Task.WalkTo; _taskPed = ped; }
        public void ChatWithPed(int ped, int durationMs) { _task = Task.Chat; _taskPed = ped; }
        public void WanderOnFoot() { _task = Task.Wander; NewWanderTarget(); }
        public void LeaveVehicle() { if (_inVehicle) { _task = Task.Leave; _taskUntilMs = _clock.Ms + 1500; } }
        public void EnterLastVehicle() { if (_hasVehicle && !_inVehicle) { _task = Task.Enter; _taskUntilMs = _clock.Ms + 30000; } }
    }
}
