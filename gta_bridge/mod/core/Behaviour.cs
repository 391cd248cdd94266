// playmill GTA V recorder: the behaviour planner (game-independent). Decides which task the player ped
// gets: drive to waypoints or wander; walk up to NPCs and talk to them; leave and re-enter the vehicle.
// Tasks persist in the game, so commands are issued only when the plan changes.
using System;
using System.Collections.Generic;

namespace Playmill.GtaRecorder
{
    public sealed class BehaviourPlanner
    {
        enum State { Drive, Leaving, WalkSeek, WalkApproach, Chat, WalkWander, Entering }

        const double WaypointRadiusM = 8.0;
        const double ChatDistanceM = 2.0;
        const double ApproachTimeoutMs = 20000.0;
        const double WanderReseekMs = 5000.0;
        const double LeaveTimeoutMs = 10000.0;
        const double EnterTimeoutMs = 30000.0;

        readonly Scenario _s;
        readonly HashSet<int> _talkedTo = new HashSet<int>();
        State _state;
        int _waypoint;
        bool _cruising;
        int _ped;
        double _stateSinceMs;
        double _phaseSinceMs;

        public BehaviourPlanner(Scenario scenario) { _s = scenario; }

        /// <summary>The tick's mode for the log: drive, walk, chat, enter_vehicle or leave_vehicle.</summary>
        public string Mode
        {
            get
            {
                switch (_state)
                {
                    case State.Drive: return "drive";
                    case State.Leaving: return "leave_vehicle";
                    case State.Entering: return "enter_vehicle";
                    case State.Chat: return "chat";
                    default: return "walk";
                }
            }
        }

        public void Start(IGameWorld w, double nowMs, List<TickEvent> ev)
        {
            _phaseSinceMs = nowMs;
            if (_s.Behaviour == "walk_interact")
            {
                if (w.ReadPlayer().InVehicle) { w.LeaveVehicle(); Enter(State.Leaving, nowMs); ev.Add(new TickEvent("leave_vehicle_start")); }
                else Enter(State.WalkSeek, nowMs);
            }
            else StartDriving(w, nowMs, ev);
        }

        void Enter(State s, double nowMs) { _state = s; _stateSinceMs = nowMs; }

        void StartDriving(IGameWorld w, double nowMs, List<TickEvent> ev)
        {
            Enter(State.Drive, nowMs);
            _phaseSinceMs = nowMs;
            _cruising = false;
            if (_s.Behaviour == "drive_waypoints" && _waypoint < _s.WaypointsM.Count)
            {
                w.DriveTo(_s.WaypointsM[_waypoint], _s.SpeedMps, WaypointRadiusM);
                var e = new TickEvent("waypoint_set");
                e.Index = _waypoint; e.HasPosition = true; e.Position = _s.WaypointsM[_waypoint];
                ev.Add(e);
            }
            else
            {
                w.CruiseWander(_s.SpeedMps);
                _cruising = true;
                ev.Add(new TickEvent("wander_start"));
            }
        }

        public void Step(IGameWorld w, double nowMs, List<TickEvent> ev)
        {
            PlayerState p = w.ReadPlayer();
            switch (_state)
            {
                case State.Drive:
                    StepDrive(w, p, nowMs, ev);
                    break;
                case State.Leaving:
                    if (!p.InVehicle || nowMs - _stateSinceMs > LeaveTimeoutMs)
                    {
                        ev.Add(new TickEvent("leave_vehicle_done"));
                        _phaseSinceMs = nowMs;
                        Enter(State.WalkSeek, nowMs);
                    }
                    break;
                case State.Entering:
                    if (p.InVehicle)
                    {
                        ev.Add(new TickEvent("enter_vehicle_done"));
                        StartDriving(w, nowMs, ev);
                    }
                    else if (nowMs - _stateSinceMs > EnterTimeoutMs)
                    {
                        // the vehicle is gone or unreachable: keep walking, try again next phase
                        _phaseSinceMs = nowMs;
                        Enter(State.WalkSeek, nowMs);
                    }
                    break;
                default:
                    StepWalk(w, p, nowMs, ev);
                    break;
            }
        }

        void StepDrive(IGameWorld w, PlayerState p, double nowMs, List<TickEvent> ev)
        {
            if (_s.Behaviour == "mixed" && nowMs - _phaseSinceMs >= _s.DriveS * 1000.0 && p.InVehicle)
            {
                w.LeaveVehicle();
                ev.Add(new TickEvent("leave_vehicle_start"));
                Enter(State.Leaving, nowMs);
                return;
            }
            if (_cruising || _s.Behaviour != "drive_waypoints") return;
            VehicleState v = w.ReadVehicle();
            if (v == null || !v.Position.IsFinite) return;
            if (Vec3d.From(v.Position).DistanceXY(_s.WaypointsM[_waypoint]) <= WaypointRadiusM)
            {
                var reached = new TickEvent("waypoint_reached");
                reached.Index = _waypoint;
                ev.Add(reached);
                _waypoint++;
                if (_waypoint < _s.WaypointsM.Count)
                {
                    w.DriveTo(_s.WaypointsM[_waypoint], _s.SpeedMps, WaypointRadiusM);
                    var e = new TickEvent("waypoint_set");
                    e.Index = _waypoint; e.HasPosition = true; e.Position = _s.WaypointsM[_waypoint];
                    ev.Add(e);
                }
                else
                {
                    w.CruiseWander(_s.SpeedMps);
                    _cruising = true;
                    ev.Add(new TickEvent("wander_start"));
                }
            }
        }

        void StepWalk(IGameWorld w, PlayerState p, double nowMs, List<TickEvent> ev)
        {
            if (_s.Behaviour == "mixed" && nowMs - _phaseSinceMs >= _s.WalkS * 1000.0 && _state != State.Chat)
            {
                w.EnterLastVehicle();
                ev.Add(new TickEvent("enter_vehicle_start"));
                Enter(State.Entering, nowMs);
                return;
            }
            switch (_state)
            {
                case State.WalkSeek:
                {
                    int ped = w.FindNearbyPed(_s.InteractRadiusM, _talkedTo);
                    if (ped != 0)
                    {
                        _ped = ped;
                        w.WalkToPed(ped);
                        var e = new TickEvent("walk_to_ped");
                        e.Ped = ped;
                        ev.Add(e);
                        Enter(State.WalkApproach, nowMs);
                    }
                    else
                    {
                        w.WanderOnFoot();
                        ev.Add(new TickEvent("walk_wander"));
                        Enter(State.WalkWander, nowMs);
                    }
                    break;
                }
                case State.WalkApproach:
                {
                    Vec3d target;
                    if (!w.TryPedPosition(_ped, out target) || nowMs - _stateSinceMs > ApproachTimeoutMs)
                    {
                        _talkedTo.Add(_ped);
                        Enter(State.WalkSeek, nowMs);
                    }
                    else if (p.Position.IsFinite && Vec3d.From(p.Position).DistanceXY(target) <= ChatDistanceM)
                    {
                        w.ChatWithPed(_ped, _s.ChatMs);
                        var e = new TickEvent("chat_start");
                        e.Ped = _ped;
                        ev.Add(e);
                        Enter(State.Chat, nowMs);
                    }
                    break;
                }
                case State.Chat:
                    if (nowMs - _stateSinceMs >= _s.ChatMs)
                    {
                        var e = new TickEvent("chat_end");
                        e.Ped = _ped;
                        ev.Add(e);
                        _talkedTo.Add(_ped);
                        Enter(State.WalkSeek, nowMs);
                    }
                    break;
                case State.WalkWander:
                    if (nowMs - _stateSinceMs >= WanderReseekMs) Enter(State.WalkSeek, nowMs);
                    break;
            }
        }
    }
}
