"""Panda3D glue: render a sandbox level offscreen in software and grab frames as NumPy arrays.

This is the only module that imports Panda3D. The display is the software renderer (``p3tinydisplay``,
offscreen): no GPU and no window system are needed. One graphics pipe is made per process, lazily; every
:class:`SceneRenderer` owns its own :class:`GraphicsEngine`, offscreen buffer, scene root and camera, so
several renderers can exist side by side and be closed in any order (ShowBase, a process singleton, is
not used at all).

Frames come from a render texture copied to RAM after each frame: ``uint8[H, W, 3]`` RGB, top row first.

The software renderer has no fog, so fog is drawn as camera-facing translucent layers at increasing
distances whose opacities compound to exponential fog (:func:`fog_layer_alphas`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from panda3d.core import (
    AmbientLight, CullBinManager, DirectionalLight, FrameBufferProperties, Geom, GeomLines, GeomNode,
    GeomTriangles, GeomVertexArrayFormat, GeomVertexData, GeomVertexFormat, GraphicsEngine, GraphicsOutput,
    GraphicsPipe, GraphicsPipeSelection, InternalName, Loader, LPoint3, NodePath, OmniBoundingVolume,
    PerspectiveLens, SamplerState, Texture, TransparencyAttrib, WindowProperties, getModelPath, loadPrcFileData,
    Filename, Camera, ColorAttrib, LightAttrib, LMatrix4f, RenderState, TexGenAttrib, TexMatrixAttrib, TextureAttrib,
    TextureStage, TransformState,
)

from .actor_meshes import BoxActors, draw_order, human_parts, vehicle_parts
from .atmosphere import Atmosphere
from .frames import ue_to_panda_dir, ue_to_panda_pos, ue_rotator_to_panda_hpr, ue_yaw_to_panda_heading
from .geometry import Mesh, MeshBuilder
from .scene_meshes import build_static_meshes, model_placements
from .textures import material, texture_image

if TYPE_CHECKING:
    from .actors import Movers
    from .layout import Layout

PRC = """
load-display p3tinydisplay
window-type offscreen
audio-library-name null
sync-video 0
"""

NEAR_M = 0.08
FAR_M = 900.0
SKY_RADIUS_M = 500.0
BIN_SKY, BIN_GROUND, BIN_SOLID, BIN_FOG = "playmill_sky", "playmill_ground", "playmill_solid", "playmill_fog"
MAX_DRAWN_NPCS = 24
MAX_DRAWN_VEHICLES = 14
#: Depth passes: texels of the 1-D code ramp, the range of the coarse pass and the period of the fine pass (m).
DEPTH_RAMP_TEXELS = 4096
DEPTH_COARSE_RANGE_M = FAR_M
DEPTH_FINE_PERIOD_M = 25.0

_pipe = None
_depth_ramps: dict[bool, Texture] = {}
_textures: dict[str, Texture] = {}
_models: dict[str, NodePath] = {}
_format = None


def graphics_pipe() -> GraphicsPipe:
    """The process-wide software graphics pipe (made on first use)."""
    global _pipe
    if _pipe is None:
        loadPrcFileData("playmill-sandbox", PRC)
        models = os.path.join(os.path.dirname(__import__("panda3d").__file__), "models")
        if os.path.isdir(models):
            getModelPath().appendDirectory(models)
        bins = CullBinManager.getGlobalPtr()
        # fixed bins draw in the order we give, so frames never depend on how Panda3D sorts states in memory
        for name, sort in ((BIN_SKY, 2), (BIN_GROUND, 4), (BIN_SOLID, 20), (BIN_FOG, 40)):
            if bins.findBin(name) < 0:
                bins.addBin(name, CullBinManager.BTFixed, sort)
        pipe = GraphicsPipeSelection.getGlobalPtr().makePipe("TinyOffscreenGraphicsPipe", "p3tinydisplay")
        if pipe is None:
            raise RuntimeError("Panda3D could not open its software renderer (p3tinydisplay, offscreen)")
        _pipe = pipe
    return _pipe


def _vertex_format() -> GeomVertexFormat:
    global _format
    if _format is None:
        fmt = GeomVertexFormat()
        # colours as 4 x uint8, the software renderer's own format: no per-frame conversion ("munging")
        for name, n, kind, contents in ((InternalName.getVertex(), 3, Geom.NTFloat32, Geom.CPoint),
                                        (InternalName.getNormal(), 3, Geom.NTFloat32, Geom.CNormal),
                                        (InternalName.getColor(), 4, Geom.NTUint8, Geom.CColor),
                                        (InternalName.getTexcoord(), 2, Geom.NTFloat32, Geom.CTexcoord)):
            arr = GeomVertexArrayFormat()
            arr.addColumn(name, n, kind, contents)
            fmt.addArray(arr)
        _format = GeomVertexFormat.registerFormat(fmt)
    return _format


COLOR_ARRAY = 2


def _array_bytes(i: int, values: np.ndarray) -> bytes:
    """Bytes of column array ``i`` of :func:`_vertex_format`: float32, or uint8 for the colour array."""
    if i == COLOR_ARRAY:
        return np.clip(np.rint(np.asarray(values) * 255.0), 0, 255).astype(np.uint8).tobytes()
    return np.ascontiguousarray(values, dtype=np.float32).tobytes()


def _write_array(vdata: GeomVertexData, i: int, values: np.ndarray) -> None:
    data = _array_bytes(i, values)
    memoryview(vdata.modifyArray(i)).cast("B")[:len(data)] = data


def make_geom_node(name: str, mesh: Mesh, dynamic: bool = False) -> GeomNode:
    """A GeomNode holding ``mesh`` (positions, normals, colours, UVs, triangles)."""
    vdata = GeomVertexData(name, _vertex_format(), Geom.UHDynamic if dynamic else Geom.UHStatic)
    vdata.uncleanSetNumRows(len(mesh.pos))
    for i, arr in enumerate((mesh.pos, mesh.nrm, mesh.col, mesh.uv)):
        _write_array(vdata, i, arr)
    tris = GeomTriangles(Geom.UHStatic)
    tris.setIndexType(Geom.NTUint32)
    handle = tris.modifyVertices()
    handle.uncleanSetNumRows(mesh.idx.size)
    memoryview(handle).cast("B")[:] = np.ascontiguousarray(mesh.idx, dtype=np.uint32).tobytes()
    geom = Geom(vdata)
    geom.addPrimitive(tris)
    node = GeomNode(name)
    node.addGeom(geom)
    return node


def texture(name: str) -> Texture:
    """The Panda3D texture of a procedural texture (cached per process), with mipmaps."""
    tex = _textures.get(name)
    if tex is None:
        img = texture_image(name)
        tex = Texture(name)
        tex.setup2dTexture(img.shape[1], img.shape[0], Texture.TUnsignedByte, Texture.FRgb)
        tex.setRamImage(np.ascontiguousarray(img[::-1, :, ::-1]).tobytes())  # bottom row first, BGR
        tex.setMinfilter(SamplerState.FTLinearMipmapLinear)
        tex.setMagfilter(SamplerState.FTLinear)
        tex.setWrapU(SamplerState.WMRepeat)
        tex.setWrapV(SamplerState.WMRepeat)
        tex.generateRamMipmapImages()
        _textures[name] = tex
    return tex


def unit_model(path: str) -> NodePath:
    """A Panda3D model (e.g. ``models/panda-model``) scaled to 1 unit tall, centred above the origin.

    Loaded once per process and kept, so every world places exactly the same geometry."""
    model = _models.get(path)
    if model is None:
        node = Loader.getGlobalPtr().loadSync(Filename(path))
        if node is None:
            raise RuntimeError(f"Panda3D could not load its bundled model {path!r}")
        model = NodePath("unit:" + path)
        inner = NodePath(node).copyTo(model)
        lo, hi = inner.getTightBounds()
        scale = 1.0 / max(1e-6, hi[2] - lo[2])
        inner.setScale(scale)
        inner.setPos(-(lo[0] + hi[0]) / 2 * scale, -(lo[1] + hi[1]) / 2 * scale, -lo[2] * scale)
        _models[path] = model  # never flattened: its geometry is shared with Panda3D's model pool
    return model


def collect_state_garbage() -> None:
    """Free Panda3D's cached render/transform states that nothing uses any more.

    ShowBase does this every frame; without ShowBase a moving camera would grow the caches forever."""
    TransformState.garbageCollect()
    RenderState.garbageCollect()


def fog_layer_alphas(distances_m: np.ndarray, density_per_m: float) -> np.ndarray:
    """Opacities of fog layers at increasing distances whose compounded cover equals ``1 - exp(-density d)``.

    A pixel behind layers ``1..k`` keeps ``prod(1 - alpha_i)`` of its colour, which equals ``exp(-density d_k)``."""
    d = np.asarray(distances_m, dtype=np.float64)
    keep = np.exp(-density_per_m * d)
    prev = np.concatenate([[1.0], keep[:-1]])
    return 1.0 - keep / prev


def depth_ramp(repeat: bool) -> Texture:
    """A 1-D texture whose texel ``i`` has the colour code ``R = i & 255, G = i >> 8`` (nearest filtering),
    clamped or repeated along u: the lookup table of the depth passes (cached per process)."""
    tex = _depth_ramps.get(repeat)
    if tex is None:
        n = DEPTH_RAMP_TEXELS
        idx = np.arange(n)
        img = np.zeros((1, n, 3), dtype=np.uint8)  # Panda3D RAM images are BGR
        img[0, :, 2] = idx & 0xFF
        img[0, :, 1] = (idx >> 8) & 0xFF
        tex = Texture("depth-ramp-repeat" if repeat else "depth-ramp")
        tex.setup2dTexture(n, 1, Texture.TUnsignedByte, Texture.FRgb)
        tex.setRamImage(img.tobytes())
        tex.setMinfilter(SamplerState.FTNearest)
        tex.setMagfilter(SamplerState.FTNearest)
        tex.setWrapU(SamplerState.WMRepeat if repeat else SamplerState.WMClamp)
        tex.setWrapV(SamplerState.WMClamp)
        _depth_ramps[repeat] = tex
    return tex


def depth_pass_state(period_m: float, repeat: bool) -> RenderState:
    """Render state of one depth pass: every surface unlit, flat white, textured with the code ramp at
    ``u = eye_y / period_m`` (eye-space depth generated per vertex, interpolated perspective-correctly), overriding
    the scene's own textures, lights and colours."""
    stage = TextureStage.getDefault()
    # Panda3D multiplies row vectors: (x, y, z, 1) M -> u = y / period, v = 0.5
    mat = LMatrix4f(0, 0, 0, 0, 1.0 / period_m, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 0, 1)
    return RenderState.make(TextureAttrib.make(depth_ramp(repeat)), TexGenAttrib.make(stage, TexGenAttrib.MEyePosition),
                            TexMatrixAttrib.make(stage, TransformState.makeMat(mat)), LightAttrib.makeAllOff(),
                            ColorAttrib.makeFlat((1, 1, 1, 1)), 1000)


def decode_depth(coarse_rgb: np.ndarray, fine_rgb: np.ndarray, far_m: float = FAR_M) -> np.ndarray:
    """Plane depth in metres (float64 [H, W]) from the two code images of the depth passes.

    The coarse pass codes ``depth / DEPTH_COARSE_RANGE_M`` (one texel is ~22 cm), the fine pass the depth modulo
    ``DEPTH_FINE_PERIOD_M`` (one texel is ~6 mm); the coarse value picks the period. Pixels where nothing was
    drawn (code beyond the ramp: the clear colour) get ``far_m``."""
    n = DEPTH_RAMP_TEXELS
    ic = coarse_rgb[..., 1].astype(np.int64) * 256 + coarse_rgb[..., 0]
    ifine = fine_rgb[..., 1].astype(np.int64) * 256 + fine_rgb[..., 0]
    coarse = (ic + 0.5) / n * DEPTH_COARSE_RANGE_M
    fine = (ifine + 0.5) / n * DEPTH_FINE_PERIOD_M
    depth = fine + DEPTH_FINE_PERIOD_M * np.round((coarse - fine) / DEPTH_FINE_PERIOD_M)
    return np.where((ic >= n) | (ifine >= n), far_m, np.clip(depth, 0.0, far_m))


class _ActorGroup:
    """The vertex buffers of one group of actors; each frame only the actors that may be seen are drawn."""

    def __init__(self, actors: BoxActors) -> None:
        self.actors = actors
        self.slots: dict[str, tuple[NodePath, Geom, GeomVertexData, np.ndarray]] = {}
        self._drawn = -1

    def draw(self, order: np.ndarray, movers: "Movers", swing: np.ndarray, lift: np.ndarray) -> None:
        """Fill the start of the buffers with the actors ``order`` and draw only those."""
        k = len(order)
        pos = ue_to_panda_pos(np.column_stack([movers.pos_cm, np.zeros(len(movers))]))
        posed = self.actors.pose(order, pos, ue_yaw_to_panda_heading(movers.yaw_deg), swing, lift) if k else {}
        for mat, (np_, geom, vdata, idx) in self.slots.items():
            if k == 0:
                np_.hide()
                continue
            np_.show()
            p, n, c = posed[mat]
            for i, arr in enumerate((p, n, c)):
                _write_array(vdata, i, arr)
            if k != self._drawn:
                n_idx = k * self.actors.boxes(mat) * len(idx) // (self.actors.n * self.actors.boxes(mat))
                handle = geom.modifyPrimitive(0).modifyVertices()
                handle.uncleanSetNumRows(n_idx)
                memoryview(handle).cast("B")[:] = idx[:n_idx].tobytes()
        self._drawn = k


class SceneRenderer:
    """Renders one sandbox level; owns its engine, offscreen buffer, scene root and camera."""

    def __init__(self, width: int, height: int, fov_deg: float) -> None:
        self.width, self.height = int(width), int(height)
        pipe = graphics_pipe()
        self.engine = GraphicsEngine(pipe)
        fbp = FrameBufferProperties()
        fbp.setRgbColor(True)
        fbp.setDepthBits(24)
        self.buffer = self.engine.makeOutput(pipe, "playmill-sandbox", 0, fbp, WindowProperties.size(self.width, self.height),
                                             GraphicsPipe.BFRefuseWindow, None, None)
        if self.buffer is None:
            raise RuntimeError(f"Panda3D could not make a {self.width}x{self.height} offscreen buffer")
        self.frame_tex = Texture("frame")
        self.buffer.addRenderTexture(self.frame_tex, GraphicsOutput.RTMCopyRam, GraphicsOutput.RTPColor)
        self.root = NodePath("sandbox-root")
        self.camera = self.root.attachNewNode(Camera("camera"))
        lens = PerspectiveLens()
        vfov = 2.0 * np.degrees(np.arctan(np.tan(np.radians(fov_deg) / 2.0) * self.height / self.width))
        lens.setFov(float(fov_deg), float(vfov))
        lens.setNearFar(NEAR_M, FAR_M)
        self.camera.node().setLens(lens)
        self.hfov_deg, self.vfov_deg = float(fov_deg), float(vfov)
        region = self.buffer.makeDisplayRegion()
        region.setCamera(self.camera)
        self.scene = self.root.attachNewNode("scene")
        self.sky: NodePath | None = None
        self.rain: tuple[NodePath, GeomVertexData, np.ndarray] | None = None
        self._npc: _ActorGroup | None = None
        self._veh: _ActorGroup | None = None
        self._closed = False
        self._frames = 0

    # ------------------------------------------------------------------ building

    def build(self, layout: "Layout", atmo: Atmosphere, npcs: "Movers", vehicles: "Movers") -> None:
        """Replace the scene with ``layout`` lit by ``atmo``, with meshes for the given movers."""
        self.scene.removeNode()
        self.scene = self.root.attachNewNode("scene")
        self._draw_order = 0
        self.root.clearLight()
        self.sky = None
        self.rain = None
        ground, solid = build_static_meshes(layout, atmo)
        for k, (key, mesh) in enumerate(ground.build()):
            layer, mat = key.split("|", 1)
            np_ = self._attach(mesh, mat, atmo, "ground")
            # ground layers are coplanar: drawn in layer order without the depth test (so they never fight),
            # but writing depth, so that what stands on the ground and the fog layers are occluded correctly
            np_.setBin(BIN_GROUND, int(layer) * 100000 + k)
            np_.setDepthTest(False)
        for mat, mesh in solid.build():
            self._attach(mesh, mat, atmo, "solid")
        for mp in model_placements(layout):
            self._place_model(mp)

        amb = AmbientLight("ambient")
        amb.setColor((*atmo.ambient, 1.0))
        sun = DirectionalLight("sun")
        sun.setColor((*atmo.light_color, 1.0))
        amb_np = self.scene.attachNewNode(amb)
        sun_np = self.scene.attachNewNode(sun)
        sun_np.lookAt(LPoint3(*(-ue_to_panda_dir(atmo.light_dir))))
        self.root.setLight(amb_np)
        self.root.setLight(sun_np)

        clear = atmo.fog_color if layout.outdoor else (0.2, 0.2, 0.2)
        self.buffer.setClearColor((*clear, 1.0))
        if layout.outdoor:
            self._build_sky(atmo)
        if atmo.fog_density_per_m > 0:
            self._build_fog(atmo)
        if atmo.rain and layout.outdoor:
            self._build_rain()
        self._npc = self._actors([human_parts(npcs.looks["height_cm"][i], npcs.looks["shirt"][i], npcs.looks["pants"][i],
                                              npcs.looks["skin"][i], npcs.looks["hair"][i]) for i in range(len(npcs))], atmo)
        self._veh = self._actors([vehicle_parts(2 * vehicles.half_len_cm[i], 2 * vehicles.half_width_cm[i],
                                                vehicles.looks["height_cm"][i], vehicles.looks["paint"][i], bool(vehicles.looks["van"][i]))
                                  for i in range(len(vehicles))], atmo)
        collect_state_garbage()  # the previous scene's states

    def _attach(self, mesh: Mesh, mat_name: str, atmo: Atmosphere, tag: str, dynamic: bool = False) -> NodePath:
        mat = material(mat_name)
        node = make_geom_node(f"{tag}:{mat_name}", mesh, dynamic)
        np_ = self.scene.attachNewNode(node)
        self._draw_order += 1
        np_.setBin(BIN_SOLID, self._draw_order)
        tex_name = mat.night_texture if (atmo.night and mat.night_texture) else mat.texture
        if tex_name:
            np_.setTexture(texture(tex_name), 1)
        else:
            np_.setTextureOff(1)
        if mat.unlit:
            np_.setLightOff(1)
        return np_

    def _place_model(self, mp) -> None:
        """Place a Panda3D model scaled to ``mp.height_m``, standing centred on ``mp.pos_m``."""
        wrapper = self.scene.attachNewNode("model")
        self._draw_order += 1
        wrapper.setBin(BIN_SOLID, self._draw_order)
        unit_model(mp.model).copyTo(wrapper)
        wrapper.setScale(mp.height_m)
        wrapper.setPosHpr(float(mp.pos_m[0]), float(mp.pos_m[1]), float(mp.pos_m[2]), mp.heading_deg, 0.0, 0.0)

    def _actors(self, parts: list, atmo: Atmosphere) -> "_ActorGroup | None":
        if not parts:
            return None
        actors = BoxActors(parts)
        group = _ActorGroup(actors)
        for mat, mesh in actors.rest_meshes().items():
            np_ = self._attach(mesh, mat, atmo, "actors", dynamic=True)
            np_.node().setBounds(OmniBoundingVolume())
            np_.node().setFinal(True)
            geom = np_.node().modifyGeom(0)
            group.slots[mat] = (np_, geom, geom.modifyVertexData(), mesh.idx.reshape(-1))
        return group

    def _build_sky(self, atmo: Atmosphere) -> None:
        """A camera-centred dome with a vertical colour gradient and the sun's disc and glow."""
        sky = MeshBuilder(tile_m=1e9)
        elev = np.radians(np.array([-40.0, -8.0, 0.0, 4.0, 10.0, 20.0, 35.0, 55.0, 75.0, 90.0]))
        az = np.linspace(0.0, 2 * np.pi, 33)
        ee, aa = np.meshgrid(elev, az, indexing="ij")
        dirs = np.stack([np.cos(ee) * np.cos(aa), np.cos(ee) * np.sin(aa), np.sin(ee)], axis=-1).reshape(-1, 3)
        t = np.clip(np.sin(ee.ravel()), 0.0, 1.0) ** 0.6
        hor, zen = np.asarray(atmo.sky_horizon), np.asarray(atmo.sky_zenith)
        col = hor[None] * (1 - t[:, None]) + zen[None] * t[:, None]
        below = ee.ravel() < 0
        col[below] = hor * 0.85
        ne, na = len(elev), len(az)
        i = (np.arange(ne - 1)[:, None] * na + np.arange(na - 1)[None, :]).ravel()
        idx = np.concatenate([np.stack([i, i + 1, i + na + 1], 1), np.stack([i, i + na + 1, i + na], 1)])
        sky.add("emissive", dirs * SKY_RADIUS_M, -dirs, np.zeros((len(dirs), 2)), np.column_stack([col, np.ones(len(col))]), idx)
        if atmo.sun_disc is not None:
            sun = ue_to_panda_dir(atmo.light_dir)
            up = np.array([0.0, 0.0, 1.0]) if abs(sun[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
            u = np.cross(sun, up)
            u /= np.linalg.norm(u)
            v = np.cross(u, sun)
            a = np.linspace(0.0, 2 * np.pi, 25)[:-1]
            sky_at_sun = hor + (zen - hor) * np.clip(sun[2], 0, 1) ** 0.6
            for ang_deg, inner, outer in ((9.0, 0.55 * np.asarray(atmo.sun_disc) + 0.45 * sky_at_sun, sky_at_sun),
                                          (1.6, np.asarray(atmo.sun_disc), np.asarray(atmo.sun_disc))):
                r = np.tan(np.radians(ang_deg)) * SKY_RADIUS_M * 0.97
                centre = sun * SKY_RADIUS_M * 0.97
                ring = centre + r * (np.cos(a)[:, None] * u + np.sin(a)[:, None] * v)
                pos = np.vstack([centre, ring])
                colr = np.vstack([np.append(inner, 1.0), np.tile(np.append(outer, 1.0), (len(a), 1))])
                fan = np.stack([np.zeros(len(a), dtype=np.int64), 1 + np.arange(len(a)), 1 + (np.arange(len(a)) + 1) % len(a)], 1)
                sky.add("emissive" if ang_deg > 2 else "glass", pos, np.tile(-sun, (len(pos), 1)), np.zeros((len(pos), 2)), colr, fan)
        node = self.scene.attachNewNode("sky")
        for order, (mat, mesh) in enumerate(sky.build()):
            np_ = NodePath(make_geom_node("sky", mesh))
            np_.reparentTo(node)
            np_.setBin(BIN_SKY, order)
        node.setLightOff(1)
        node.setTextureOff(1)
        node.setDepthWrite(False)
        node.setDepthTest(False)
        self.sky = node

    def _build_fog(self, atmo: Atmosphere) -> None:
        """Translucent camera-facing layers whose opacities compound to exponential fog."""
        rho = atmo.fog_density_per_m
        far = min(FAR_M * 0.9, 4.5 / rho)
        # each layer costs a full-screen blend in software: six for thick fog, three for haze
        dists = np.geomspace(min(4.0, 0.1 * far), far, 6 if rho >= 0.03 else 3)
        alphas = fog_layer_alphas(dists, rho)
        tx, ty = np.tan(np.radians(self.hfov_deg / 2)) * 1.1, np.tan(np.radians(self.vfov_deg / 2)) * 1.1
        fog = self.camera.attachNewNode("fog")
        for k, (d, a) in enumerate(zip(dists, alphas)):
            pos = np.array([[-tx * d, d, -ty * d], [tx * d, d, -ty * d], [tx * d, d, ty * d], [-tx * d, d, ty * d]])
            nrm = np.tile([0.0, -1.0, 0.0], (4, 1))
            mesh = Mesh(pos.astype(np.float32), nrm.astype(np.float32),
                        np.tile([*atmo.fog_color, a], (4, 1)).astype(np.float32), np.zeros((4, 2), np.float32),
                        np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint32))  # counter-clockwise seen from the camera
            np_ = fog.attachNewNode(make_geom_node("fog", mesh))
            np_.setBin(BIN_FOG, len(dists) - k)  # far layers first
        fog.setTransparency(TransparencyAttrib.MAlpha)
        fog.setDepthWrite(False)
        fog.setLightOff(1)
        fog.setTextureOff(1)
        fog.node().setBounds(OmniBoundingVolume())
        fog.node().setFinal(True)

    def _build_rain(self, n: int = 260) -> None:
        """Falling streaks around the camera (position and heading follow it, so the rain stays vertical)."""
        rng = np.random.default_rng(7)
        base = np.column_stack([rng.uniform(-7, 7, n), rng.uniform(0.6, 14, n), rng.uniform(0.0, 8.0, n)])
        vdata = GeomVertexData("rain", _vertex_format(), Geom.UHDynamic)
        vdata.uncleanSetNumRows(2 * n)
        _write_array(vdata, 1, np.tile([0.0, -1.0, 0.0], (2 * n, 1)))
        _write_array(vdata, 2, np.tile([0.72, 0.75, 0.82, 1.0], (2 * n, 1)))
        _write_array(vdata, 3, np.zeros((2 * n, 2)))
        lines = GeomLines(Geom.UHStatic)
        for i in range(n):
            lines.addVertices(2 * i, 2 * i + 1)
        geom = Geom(vdata)
        geom.addPrimitive(lines)
        node = GeomNode("rain")
        node.addGeom(geom)
        node.setBounds(OmniBoundingVolume())
        node.setFinal(True)
        np_ = self.scene.attachNewNode(node)
        np_.setLightOff(1)
        np_.setTextureOff(1)
        np_.setBin(BIN_FOG, 100)
        self.rain = (np_, np_.node().modifyGeom(0).modifyVertexData(), base)

    # ------------------------------------------------------------------ per frame

    def render(self, eye_cm: np.ndarray, pitch_deg: float, yaw_deg: float, npcs: "Movers", vehicles: "Movers", t_s: float,
               roll_deg: float = 0.0) -> np.ndarray:
        """Pose the camera and the actors, render one frame, return it as ``uint8[H, W, 3]`` RGB (top row first)."""
        self._pose(eye_cm, pitch_deg, yaw_deg, roll_deg, npcs, vehicles, t_s)
        return self._grab()

    def render_depth(self, eye_cm: np.ndarray, pitch_deg: float, yaw_deg: float, npcs: "Movers", vehicles: "Movers",
                     t_s: float, roll_deg: float = 0.0) -> np.ndarray:
        """Plane depth (distance along the view axis) in cm, ``float32[H, W]`` (top row first), of the same view
        :meth:`render` shows; ``FAR_M`` (in cm) where only sky is seen. Sky, fog and rain are left out.

        The software renderer cannot read its depth buffer back, so depth is rendered as colour: two passes with
        every surface textured by a code ramp indexed by eye-space depth (:func:`depth_pass_state`)."""
        self._pose(eye_cm, pitch_deg, yaw_deg, roll_deg, npcs, vehicles, t_s)
        cam = self.camera.node()
        hidden = [n for n in (self.sky, self.rain[0] if self.rain else None, self.camera.find("fog"))
                  if n is not None and not n.isEmpty() and not n.isHidden()]
        initial = cam.getInitialState()
        clear = self.buffer.getClearColor()
        try:
            for n in hidden:
                n.hide()
            self.buffer.setClearColor((1.0, 1.0, 1.0, 1.0))  # code 65535: beyond the ramp, "nothing drawn"
            cam.setInitialState(depth_pass_state(DEPTH_COARSE_RANGE_M, repeat=False))
            coarse = self._grab()
            cam.setInitialState(depth_pass_state(DEPTH_FINE_PERIOD_M, repeat=True))
            fine = self._grab()
        finally:
            cam.setInitialState(initial)
            self.buffer.setClearColor(clear)
            for n in hidden:
                n.show()
        return (decode_depth(coarse, fine) * 100.0).astype(np.float32)

    def _grab(self) -> np.ndarray:
        self.engine.renderFrame()
        self._frames += 1
        if self._frames % 64 == 0:
            collect_state_garbage()
        img = np.frombuffer(memoryview(self.frame_tex.getRamImageAs("RGB")), dtype=np.uint8)
        return np.ascontiguousarray(img.reshape(self.height, self.width, 3)[::-1])

    def _pose(self, eye_cm: np.ndarray, pitch_deg: float, yaw_deg: float, roll_deg: float, npcs: "Movers",
              vehicles: "Movers", t_s: float) -> None:
        """Place the camera (Unreal pose) and the sky, rain and actors for a frame at time ``t_s``."""
        cam_pos = ue_to_panda_pos(np.asarray(eye_cm, dtype=np.float64))
        self.camera.setPos(*cam_pos)
        self.camera.setHpr(*ue_rotator_to_panda_hpr(pitch_deg, yaw_deg, roll_deg))
        if self.sky is not None:
            self.sky.setPos(*cam_pos)
        if self.rain is not None:
            np_, vdata, base = self.rain
            np_.setPos(*cam_pos)
            np_.setH(float(ue_yaw_to_panda_heading(yaw_deg)))
            z = np.mod(base[:, 2] - 9.0 * t_s, 8.0) - 4.0
            top = np.column_stack([base[:, 0], base[:, 1], z + 0.35])
            bottom = np.column_stack([base[:, 0] + 0.03, base[:, 1], z])
            _write_array(vdata, 0, np.stack([top, bottom], axis=1).reshape(-1, 3))
        cam_xy = np.asarray(eye_cm, dtype=np.float64)[:2]
        half_fov = 0.5 * max(self.hfov_deg, self.vfov_deg)
        if self._npc is not None and len(npcs):
            order = draw_order(cam_xy, yaw_deg, npcs.pos_cm, half_fov, MAX_DRAWN_NPCS)
            stride = 135.0 * npcs.looks["height_cm"] / 175.0
            phase = 2 * np.pi * npcs.walk_cm / stride
            amp = 0.5 * np.clip(npcs.speed_cm_s / 80.0, 0.0, 1.0)
            lift = 0.012 * npcs.looks["height_cm"] / 100.0 * amp / 0.5 * (1 - np.cos(2 * phase)) / 2
            self._npc.draw(order, npcs, amp * np.sin(phase), lift)
        if self._veh is not None and len(vehicles):
            order = draw_order(cam_xy, yaw_deg, vehicles.pos_cm, half_fov, MAX_DRAWN_VEHICLES)
            self._veh.draw(order, vehicles, np.zeros(len(vehicles)), np.zeros(len(vehicles)))

    def close(self) -> None:
        """Release the buffer and the engine; the renderer cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        self.scene.removeNode()
        self.root.removeNode()
        self.engine.removeAllWindows()
        # drop every reference to Panda3D objects so that the buffer and its GSG are freed
        self._npc = self._veh = self.sky = self.rain = None
        self.buffer = self.frame_tex = self.camera = self.engine = None
        collect_state_garbage()
