// playmill GTA V recorder: what the session needs from the game. ShvdnWorld implements it with
// ScriptHookVDotNet v3 (in the game); FakeGame implements it in plain C# (Mono tests, no game).
using System.Collections.Generic;

namespace Playmill.GtaRecorder
{
    public interface IGameWorld
    {
        /// <summary>Game.GameTime, ms.</summary>
        int GameTimeMs { get; }
        /// <summary>Game.FrameCount.</summary>
        int FrameCount { get; }
        /// <summary>Game.LastFrameTime, seconds.</summary>
        float LastFrameTimeS { get; }
        /// <summary>Game.Version as text.</summary>
        string GameBuild { get; }
        /// <summary>True once the player ped exists and can be controlled.</summary>
        bool PlayerReady { get; }

        /// <summary>Calls the five density natives; they only last one frame, so this runs every tick.</summary>
        void ApplyDensitiesThisFrame(float vehicleDensity, float pedDensity);
        void HideHudThisFrame();
        /// <summary>Weather by lower-case internal name (SET_WEATHER_TYPE_NOW_PERSIST).</summary>
        void SetWeather(string weather);
        /// <summary>Sets the game clock (hours since midnight) and pauses it when freeze is true.</summary>
        void SetTimeOfDay(double hours, bool freeze);
        string ReadWeatherGame();
        double ReadTimeOfDayHours();
        /// <summary>DRAW_RECT in normalised screen units (centre, size), this frame only.</summary>
        void DrawRect(MarkerRect rect);

        /// <summary>Puts the player in a vehicle of the model when not in one; returns true when it spawned one.</summary>
        bool EnsurePlayerVehicle(string model);
        /// <summary>Freezes (true) or releases (false) the player's vehicle in place (while the start marker shows).</summary>
        void HoldVehicle(bool hold);
        PlayerState ReadPlayer();
        /// <summary>The player's current vehicle, null on foot.</summary>
        VehicleState ReadVehicle();
        ControlState ReadControls();

        /// <summary>Creates (once) the scripted camera, renders through it and attaches it to the player's
        /// vehicle (onVehicle) or the player ped with the rig's offset.</summary>
        void AttachCamera(CameraRig rig, bool onVehicle);
        /// <summary>Sets the camera rotation for this tick from the rig and what it is attached to.</summary>
        void UpdateCamera(CameraRig rig, bool onVehicle);
        CameraState ReadCamera();
        /// <summary>Destroys the scripted camera and gives rendering back to the gameplay camera.</summary>
        void ReleaseCamera();

        // behaviours (tasks given to the player ped)
        void DriveTo(Vec3d target, double speedMps, double radiusM);
        void CruiseWander(double speedMps);
        /// <summary>Handle of the nearest NPC within radius not in exclude, 0 when none.</summary>
        int FindNearbyPed(double radiusM, ICollection<int> exclude);
        /// <summary>Position of an NPC, or false when it no longer exists.</summary>
        bool TryPedPosition(int ped, out Vec3d position);
        void WalkToPed(int ped);
        void ChatWithPed(int ped, int durationMs);
        void WanderOnFoot();
        void LeaveVehicle();
        void EnterLastVehicle();
    }
}
