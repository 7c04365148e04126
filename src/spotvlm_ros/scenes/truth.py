"""Per-frame ground truth: the visible objects, the scene facts, and question-answer pairs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from spotvlm_ros.scenes.render import SceneObject, render
from spotvlm_ros.scenes.world import ROAD_HALF_W, Scene, sample_scene

SEEN_FRAC = 0.3  # an object counts as seen when at least this share of its box is visible
VEHICLE_KINDS = ('car', 'truck', 'bus')
MAX_COUNT = 5

# Task families, as in the paper's three real-time tasks.
DESCRIPTION, VQA, GROUNDING = 'description', 'vqa', 'grounding'
FAMILIES = (DESCRIPTION, VQA, GROUNDING)

Q_DESCRIBE = 'Describe the scene.'
Q_LIGHT = 'What colour is the traffic light?'
Q_COUNT = 'How many vehicles are ahead?'
Q_LIMIT = 'What is the speed limit?'
Q_PEDESTRIAN = 'Is there a pedestrian ahead?'
Q_ACTION = 'What should the ego vehicle do?'
Q_WHERE = {'traffic light': 'Where is the traffic light?',
           'speed limit sign': 'Where is the speed limit sign?',
           'vehicle': 'Where is the nearest vehicle?',
           'pedestrian': 'Where is the nearest pedestrian?'}


@dataclass
class QA:
    """One question about a frame, its short answer and the regions the answer relies on."""

    family: str
    question: str
    answer: str
    regions: list = field(default_factory=list)  # SceneObjects


@dataclass
class FrameTruth:
    """Everything true about one frame."""

    seed: int
    index: int
    stamp_s: float  # seconds since the sequence start
    width: int
    height: int
    ego_speed: float
    objects: list  # SceneObjects, seen or hidden
    light_state: str  # red, yellow, green, none (no light in view)
    speed_limit: str  # 30, 50, 70, none: the limit of the zone the ego is in (the first from t=0)
    vehicle_count: int
    pedestrian_ahead: bool
    action: str  # stop, slow down, go
    qa: list


def seen(objects, kinds) -> list:
    """Objects of these kinds that are visible enough to be seen, nearest first."""
    found = [o for o in objects if o.kind in kinds and o.visible_frac >= SEEN_FRAC]
    return sorted(found, key=lambda o: o.distance_m)


def box_json(objects, size=None, frame_size=None) -> str:
    """Qwen2.5-VL grounding JSON of objects, in pixels of an image of `size` (default: frame)."""
    sx = sy = 1.0
    if size is not None and frame_size is not None:
        sx, sy = size[0] / frame_size[0], size[1] / frame_size[1]
    items = [{'bbox_2d': [round(o.box[0] * sx), round(o.box[1] * sy), round(o.box[2] * sx),
                          round(o.box[3] * sy)], 'label': _short_label(o)} for o in objects]
    return json.dumps(items)


def asked_object(question: str) -> str:
    """What a "where is" question asks for: 'Where is the nearest vehicle?' -> 'nearest vehicle'."""
    return question.split('the ')[-1].rstrip('?')


def _short_label(o: SceneObject) -> str:
    return 'vehicle' if o.kind in VEHICLE_KINDS else o.kind


def frame_truth(scene: Scene, index: int, width: int, height: int, fps: float = 10.0):
    """(frame, FrameTruth) of frame `index` of `scene`."""
    t = index / fps
    frame, objects = render(scene, t, width, height, index)
    lights = seen(objects, ('traffic light',))
    light = lights[0].light_state if lights else 'none'
    vehicles = seen(objects, VEHICLE_KINDS)
    peds = seen(objects, ('pedestrian',))
    on_road = [p for p in peds if abs(p.lateral_m) < ROAD_HALF_W]
    limit_now = scene.limit_at(t)
    limit = str(limit_now) if limit_now is not None else 'none'
    stops = [s for s in seen(objects, ('stop sign',)) if s.distance_m < 25]
    action, reasons = _action(light, lights, on_road, vehicles, stops)
    truth = FrameTruth(scene.seed, index, t, width, height, scene.ego_speed, objects, light,
                       limit, min(len(vehicles), MAX_COUNT), bool(on_road), action, [])
    signs = seen(objects, ('speed limit sign',))
    truth.qa = _questions(truth, lights, vehicles, on_road, signs, reasons)
    return frame, truth


def _action(light, lights, on_road, vehicles, stops):
    """What the ego should do, and the objects that say so."""
    lead = [v for v in vehicles if v.lateral_m == 0.0 and v.distance_m < 15]
    in_lane = [p for p in on_road if abs(p.lateral_m) < 2.5 and p.distance_m < 30]
    if light == 'red' or in_lane or stops:
        return 'stop', (lights if light == 'red' else []) + in_lane + stops
    if light == 'yellow' or on_road or lead:
        return 'slow down', (lights if light == 'yellow' else []) + on_road + lead
    return 'go', []


def description(t: FrameTruth) -> str:
    """The scene description: light, vehicle count, pedestrian, speed limit, action."""
    light = f'{t.light_state} light' if t.light_state != 'none' else 'no light'
    ped = 'pedestrian ahead' if t.pedestrian_ahead else 'no pedestrian'
    return f'{light}, {t.vehicle_count} vehicles, {ped}, limit {t.speed_limit}, {t.action}.'


def _questions(t: FrameTruth, lights, vehicles, on_road, signs, reasons) -> list:
    qa = [QA(DESCRIPTION, Q_DESCRIBE, description(t), (lights + on_road + signs)[:3]),
          QA(VQA, Q_LIGHT, t.light_state, lights[:1]),
          QA(VQA, Q_COUNT, str(t.vehicle_count), vehicles[:3]),
          QA(VQA, Q_LIMIT, t.speed_limit, signs[:1]),
          QA(VQA, Q_PEDESTRIAN, 'yes' if t.pedestrian_ahead else 'no', on_road[:2]),
          QA(VQA, Q_ACTION, t.action, reasons[:3])]
    peds = seen(t.objects, ('pedestrian',))
    for key, found in (('traffic light', lights), ('speed limit sign', signs),
                       ('vehicle', vehicles), ('pedestrian', peds)):
        if found:
            qa.append(QA(GROUNDING, Q_WHERE[key], box_json(found[:1]), found[:1]))
    return qa


def sequence(seed: int, frames: int, width: int = 448, height: int = 336, fps: float = 10.0):
    """Yield (frame, FrameTruth) for the first `frames` frames of the scene of `seed`."""
    scene = sample_scene(seed)
    for index in range(frames):
        yield frame_truth(scene, index, width, height, fps)
