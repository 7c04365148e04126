"""Draws one frame of a scene in perspective and measures every object's box and visibility."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from spotvlm_ros.scenes.world import (COLOURS, LANE_W, ROAD_HALF_W, SIDE_X, VEHICLE_SIZES,
                                      Scene)

CAM_HEIGHT_M = 1.4
NEAR_Z, FAR_Z = 3.0, 120.0
EGO_GAP_M = 4.0  # a leader in the ego's lane closer than this has left the road
MIN_BOX_PX = 3.0  # smaller objects are too far to count as seen
LIGHT_RGB = {'red': (255, 40, 30), 'yellow': (255, 200, 0), 'green': (40, 230, 70)}


@dataclass
class SceneObject:
    """One object as the camera sees it in one frame."""

    track_id: int
    kind: str  # car, truck, bus, pedestrian, traffic light, speed limit sign, stop sign
    colour: str  # vehicles only, else ''
    box: tuple  # x1, y1, x2, y2 in frame pixels, clipped to the frame
    distance_m: float
    lateral_m: float
    visible_frac: float = 1.0  # share of its box not hidden by nearer objects
    light_state: str = ''  # traffic lights only
    speed_limit: int = 0  # speed-limit signs only

    @property
    def label(self) -> str:
        return f'{self.colour} {self.kind}' if self.colour else self.kind


@dataclass
class _Drawable:
    obj: SceneObject
    amodal: tuple  # unclipped box
    draw: Callable  # draw(img, box) in the frame's pixels


class Camera:
    """A pinhole camera looking down the road, horizon at a fixed row."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.f = 0.9 * width
        self.cx, self.horizon = width / 2.0, 0.42 * height

    def u(self, x: float, z: float) -> float:
        return self.cx + self.f * x / z

    def v(self, height_above_ground: float, z: float) -> float:
        return self.horizon + self.f * (CAM_HEIGHT_M - height_above_ground) / z

    def box(self, x: float, z: float, w: float, h: float, base: float = 0.0) -> tuple:
        """Pixel box of an upright rectangle of width w, height h standing at (x, z)."""
        return (self.u(x - w / 2, z), self.v(base + h, z), self.u(x + w / 2, z), self.v(base, z))


def render(scene: Scene, t: float, width: int, height: int, frame_index: int = 0):
    """(HxWx3 uint8 RGB frame, visible SceneObjects) of `scene` at time t."""
    cam = Camera(width, height)
    img = _background(scene, t, cam)
    drawables = [d for d in _drawables(scene, t, cam) if _in_view(d.amodal, cam)]
    drawables.sort(key=lambda d: -d.obj.distance_m)  # painter's order: far first
    ids = np.full((height, width), -1, np.int32)
    for i, d in enumerate(drawables):
        d.draw(img, d.amodal)
        x1, y1, x2, y2 = (int(round(v)) for v in _clip(d.amodal, cam))
        ids[max(y1, 0):y2, max(x1, 0):x2] = i
    objects = []
    for i, d in enumerate(drawables):
        x1, y1, x2, y2 = (int(round(v)) for v in _clip(d.amodal, cam))
        area = max(1, (x2 - x1) * (y2 - y1))
        d.obj.visible_frac = float((ids[y1:y2, x1:x2] == i).sum()) / area
        d.obj.box = tuple(round(float(v), 1) for v in _clip(d.amodal, cam))
        objects.append(d.obj)
    return _lighting(scene, img, frame_index), objects


def _background(scene: Scene, t: float, cam: Camera) -> np.ndarray:
    w, h = cam.width, cam.height
    img = np.empty((h, w, 3), np.uint8)
    hz = int(cam.horizon)
    rows = np.linspace(0, 1, hz)[:, None]
    img[:hz] = (np.array([110, 150, 215]) * (1 - rows) + np.array([190, 205, 225]) * rows
                )[:, None, :].astype(np.uint8)
    img[hz:] = (95, 120, 80)  # verge
    road = np.array([[cam.u(-ROAD_HALF_W, NEAR_Z / 3), cam.v(0, NEAR_Z / 3)],
                     [cam.u(ROAD_HALF_W, NEAR_Z / 3), cam.v(0, NEAR_Z / 3)],
                     [cam.u(ROAD_HALF_W, FAR_Z * 4), cam.v(0, FAR_Z * 4)],
                     [cam.u(-ROAD_HALF_W, FAR_Z * 4), cam.v(0, FAR_Z * 4)]], np.int32)
    cv2.fillPoly(img, [road], (85, 85, 90))
    # Dashes move toward the camera with the ego's odometry: motion between frames.
    offset = scene.odometry(t) % 6.0
    for lane_x in (-LANE_W / 2, LANE_W / 2):
        for k in range(40):
            z0 = 1.5 + k * 6.0 - offset
            if z0 <= 1.0:
                continue
            quad = np.array([[cam.u(lane_x - 0.08, z0), cam.v(0, z0)],
                             [cam.u(lane_x + 0.08, z0), cam.v(0, z0)],
                             [cam.u(lane_x + 0.08, z0 + 3), cam.v(0, z0 + 3)],
                             [cam.u(lane_x - 0.08, z0 + 3), cam.v(0, z0 + 3)]], np.int32)
            cv2.fillPoly(img, [quad], (230, 230, 230))
    return img


def _drawables(scene: Scene, t: float, cam: Camera) -> list:
    out = _agents(scene, t, cam, scene.vehicles, scene.pedestrians, scene.light, 0.0, 0)
    for segment in scene.active_segments(t):
        out += _agents(scene, t, cam, segment.vehicles, segment.pedestrians, segment.light,
                       segment.t_start, 1000 * segment.index)
    for ident, z, limit in scene.signs(t):
        obj = SceneObject(ident, 'speed limit sign', '', (), z, SIDE_X, speed_limit=limit)
        out.append(_Drawable(obj, cam.box(SIDE_X, z, 1.2, 1.2, base=1.6), _limit_painter(limit)))
    if scene.stop_sign_z is not None:
        z = scene.stop_sign_z - scene.odometry(t)
        obj = SceneObject(400, 'stop sign', '', (), z, SIDE_X)
        out.append(_Drawable(obj, cam.box(SIDE_X, z, 1.1, 1.1, base=1.6), _stop_sign))
    return out


def _agents(scene: Scene, t: float, cam: Camera, vehicles, pedestrians, light, t0: float,
            first_id: int) -> list:
    """Drawables of one stretch's vehicles (z0 at time t0), pedestrians and light."""
    out = []
    for i, v in enumerate(vehicles):
        z = v.z0 + v.rel_speed * (t - t0)
        if v.lane == 0 and 0.0 < z < EGO_GAP_M:
            continue  # the ego never drives into its leader: that one has turned off
        w, h = VEHICLE_SIZES[v.kind]
        obj = SceneObject(first_id + i, v.kind, v.colour, (), z, v.lane * LANE_W)
        out.append(_Drawable(obj, cam.box(v.lane * LANE_W, z, w, h),
                             _vehicle_painter(COLOURS[v.colour])))
    for i, p in enumerate(pedestrians):
        z = p.world_z - scene.odometry(t)
        x = scene.pedestrian_x(p, t)
        obj = SceneObject(first_id + 100 + i, 'pedestrian', '', (), z, x)
        out.append(_Drawable(obj, cam.box(x, z, 0.6, 1.75), _pedestrian))
    if light is not None:
        z = light.world_z - scene.odometry(t)
        state = light.state(t)
        obj = SceneObject(first_id + 200, 'traffic light', '', (), z, SIDE_X, light_state=state)
        out.append(_Drawable(obj, cam.box(SIDE_X, z, 0.7, 1.6, base=3.2), _light_painter(state)))
    return out


def _in_view(box: tuple, cam: Camera) -> bool:
    x1, y1, x2, y2 = _clip(box, cam)
    return (x2 - x1) >= MIN_BOX_PX and (y2 - y1) >= MIN_BOX_PX


def _clip(box: tuple, cam: Camera) -> tuple:
    x1, y1, x2, y2 = box
    return (min(max(x1, 0.0), cam.width), min(max(y1, 0.0), cam.height),
            min(max(x2, 0.0), cam.width), min(max(y2, 0.0), cam.height))


def _ints(box):
    return tuple(int(round(v)) for v in box)


def _vehicle_painter(rgb):
    def draw(img, box):
        x1, y1, x2, y2 = _ints(box)
        h = y2 - y1
        cv2.rectangle(img, (x1, y1), (x2, y2), rgb, -1)
        cv2.rectangle(img, (x1 + (x2 - x1) // 6, y1 + h // 8), (x2 - (x2 - x1) // 6, y1 + h // 3),
                      (40, 50, 60), -1)  # rear window
        cv2.rectangle(img, (x1, y2 - max(1, h // 8)), (x2, y2), (20, 20, 20), -1)  # bumper
        for lx in (x1 + (x2 - x1) // 10, x2 - (x2 - x1) // 10):
            cv2.circle(img, (lx, y1 + 2 * h // 3), max(1, (x2 - x1) // 14), (160, 0, 0), -1)
    return draw


def _pedestrian(img, box):
    x1, y1, x2, y2 = _ints(box)
    w, h = x2 - x1, y2 - y1
    cv2.circle(img, ((x1 + x2) // 2, y1 + h // 10), max(1, w // 3), (225, 180, 150), -1)
    cv2.rectangle(img, (x1, y1 + h // 5), (x2, y1 + 3 * h // 5), (200, 60, 160), -1)
    cv2.rectangle(img, (x1 + w // 6, y1 + 3 * h // 5), (x2 - w // 6, y2), (40, 40, 90), -1)


def _light_painter(state):
    def draw(img, box):
        x1, y1, x2, y2 = _ints(box)
        cx = (x1 + x2) // 2
        # The pole reaches the ground: 3.2 m below a 1.6 m head, i.e. two head heights.
        cv2.line(img, (cx, y2), (cx, y2 + 2 * (y2 - y1)), (60, 60, 60), max(1, (x2 - x1) // 6))
        cv2.rectangle(img, (x1, y1), (x2, y2), (20, 20, 20), -1)
        r = max(1, (x2 - x1) // 3)
        for k, colour in enumerate(('red', 'yellow', 'green')):
            cy = y1 + (2 * k + 1) * (y2 - y1) // 6
            lit = LIGHT_RGB[colour] if colour == state else (55, 55, 50)
            cv2.circle(img, (cx, cy), r, lit, -1)
    return draw


def _limit_painter(limit):
    def draw(img, box):
        x1, y1, x2, y2 = _ints(box)
        cx, cy, r = (x1 + x2) // 2, (y1 + y2) // 2, max(1, (x2 - x1) // 2)
        cv2.line(img, (cx, y2), (cx, int(y2 + 1.3 * (y2 - y1))), (120, 120, 120),
                 max(1, r // 5))
        cv2.circle(img, (cx, cy), r, (220, 20, 20), -1)
        cv2.circle(img, (cx, cy), max(1, int(r * 0.78)), (250, 250, 250), -1)
        _centred_text(img, str(limit), cx, cy, 1.1 * r, (10, 10, 10))
    return draw


def _stop_sign(img, box):
    x1, y1, x2, y2 = _ints(box)
    cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, max(1.0, (x2 - x1) / 2)
    angles = np.pi / 8 + np.arange(8) * np.pi / 4
    pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).astype(np.int32)
    cv2.line(img, (int(cx), y2), (int(cx), int(y2 + 1.3 * (y2 - y1))), (120, 120, 120),
             max(1, int(r) // 5))
    cv2.fillPoly(img, [pts], (200, 20, 20))
    _centred_text(img, 'STOP', int(cx), int(cy), 1.5 * r, (250, 250, 250))


def _centred_text(img, text, cx, cy, width_px, rgb):
    """Text scaled to `width_px` wide: legible only when the sign is large in pixels."""
    base, _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)
    scale = width_px / max(1, base[0])
    thick = max(1, int(round(2 * scale)))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.putText(img, text, (int(cx - tw / 2), int(cy + th / 2)), cv2.FONT_HERSHEY_SIMPLEX,
                scale, rgb, thick, cv2.LINE_AA)


def _lighting(scene: Scene, img: np.ndarray, frame_index: int) -> np.ndarray:
    """Scene-wide brightness and tint, then sensor noise that differs per frame."""
    gain = scene.brightness * np.array(scene.tint, np.float32)
    rng = np.random.default_rng([scene.seed, frame_index, 11])
    noisy = img.astype(np.float32) * gain + rng.normal(0, scene.noise_sigma, img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)
