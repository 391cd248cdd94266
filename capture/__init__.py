"""capture: the recording core of playmill (action space, input timeline, episode format, video I/O, World
protocol, collection loop) and camera motion from pixels (:mod:`capture.motion`: per frame pair, yaw and pitch in
degrees and the translation direction, from the video alone; what curation's label check and the model
evaluation both use). Imports none of playmill's other packages; heavy dependencies load on use."""

from capture.actions import DEFAULT_KEYS, ActionSpace, FrameAction
from capture.collect import CollectResult, EpisodeTask, collect, derive_seed, plan_episodes, record_episode
from capture.episode import (
    SCHEMA,
    POSE_COLUMNS,
    Episode,
    EpisodeError,
    EpisodeMeta,
    EpisodeWriter,
    actions_columns,
    cleanup_stale_temp,
    extra_column,
    episode_id,
    list_episodes,
    read_episode,
)
from capture.errors import InputError, UsageError
from capture.names import MAX_NAME_LEN, UnsafeNameError, check_name, name_problem, slug
from capture.motion import (
    DIRECTIONS,
    CameraMotion,
    MotionConfig,
    analyse_frames,
    direction_codes,
    estimate_motion,
    focal_px,
    rotation_flow,
)
from capture.replay import episode_actions, replay, replay_pose_error
from capture.rotations import forward_vector, quat_to_matrix, quat_to_rotator, rotator_to_quat, wrap_deg
from capture.timeline import FrameInputs, InputTimeline
from capture.validate import Problem, validate_episode, validate_paths
from capture.video import (
    FFmpegNotFoundError,
    VideoError,
    VideoInfo,
    VideoWriter,
    encode_video,
    ffmpeg_exe,
    iter_frames,
    probe_video,
    read_video,
)
from capture.world import Controller, Observation, World

__all__ = [
    "DEFAULT_KEYS", "ActionSpace", "FrameAction",
    "CollectResult", "EpisodeTask", "collect", "derive_seed", "plan_episodes", "record_episode",
    "InputError", "UsageError", "MAX_NAME_LEN", "UnsafeNameError", "check_name", "name_problem", "slug",
    "episode_actions", "replay", "replay_pose_error",
    "DIRECTIONS", "CameraMotion", "MotionConfig", "analyse_frames", "direction_codes", "estimate_motion", "focal_px",
    "rotation_flow",
    "forward_vector", "quat_to_matrix", "quat_to_rotator", "rotator_to_quat", "wrap_deg",
    "FrameInputs", "InputTimeline",
    "Controller", "Observation", "World",
    "SCHEMA", "POSE_COLUMNS", "Episode", "EpisodeError", "EpisodeMeta", "EpisodeWriter", "actions_columns",
    "cleanup_stale_temp", "extra_column", "episode_id", "list_episodes", "read_episode",
    "Problem", "validate_episode", "validate_paths",
    "FFmpegNotFoundError", "VideoError", "VideoInfo", "VideoWriter", "encode_video", "ffmpeg_exe", "iter_frames", "probe_video",
    "read_video",
]
