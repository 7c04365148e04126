"""A driving scene's agents, sampled from a seed, and their state at any time (closed form)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LANE_W = 3.5  # metres
ROAD_HALF_W = 1.5 * LANE_W  # three lanes, the ego in the middle one
SIDE_X = ROAD_HALF_W + 1.3  # where poles and signs stand
VEHICLE_SIZES = {'car': (1.8, 1.5), 'truck': (2.5, 3.2), 'bus': (2.6, 3.0)}  # width, height
COLOURS = {'red': (200, 30, 30), 'blue': (30, 60, 200), 'white': (235, 235, 235),
           'black': (25, 25, 30), 'yellow': (230, 200, 30)}
SPEED_LIMITS = (30, 50, 70)
LIGHT_CYCLE = ('green', 'yellow', 'red')
SIGN_SPACING_M = 40.0  # a zone repeats its speed-limit sign this often
# Every this many seconds the road ahead brings new agents, a light, maybe a new limit zone,
# so that a drive of a minute or more keeps changing. The first stretch is the seed's own.
SEGMENT_S = 20.0
SEGMENTS = 30  # drives up to ten minutes
SIGN_RANGE_M = (-10.0, 200.0)  # signs outside this distance ahead are not drawn


@dataclass(frozen=True)
class Vehicle:
    kind: str
    colour: str
    lane: int  # -1 left, 0 ego lane, 1 right
    z0: float  # distance ahead at t=0, metres
    rel_speed: float  # m/s relative to the ego (negative: the ego closes in)


@dataclass(frozen=True)
class Pedestrian:
    world_z: float  # where along the road (ego odometry frame), metres
    x0: float  # lateral position at t=0
    vx: float  # lateral speed, m/s (crossing when non-zero)
    t_start: float  # starts walking at this time


@dataclass(frozen=True)
class TrafficLight:
    world_z: float
    durations: tuple  # seconds of green, yellow, red
    phase_s: float  # time into the cycle at t=0

    def state(self, t: float) -> str:
        """The lit colour at time t."""
        cycle = sum(self.durations)
        u = (t + self.phase_s) % cycle
        for colour, length in zip(LIGHT_CYCLE, self.durations):
            if u < length:
                return colour
            u -= length
        return LIGHT_CYCLE[-1]


@dataclass(frozen=True)
class Segment:
    """What the road brings from `t_start` on; nothing of it exists before then."""

    index: int
    t_start: float
    vehicles: tuple  # Vehicles; z0 is the distance ahead at t_start
    pedestrians: tuple  # Pedestrians; world_z and t_start are absolute
    light: TrafficLight | None  # world_z absolute
    speed_limit: int | None  # a new zone's limit; None: the zone before goes on
    first_sign_z: float  # world z of the new zone's first sign


@dataclass(frozen=True)
class Scene:
    """Everything about one sequence that a seed decides."""

    seed: int
    ego_speed: float  # m/s
    vehicles: tuple
    pedestrians: tuple
    light: TrafficLight | None
    speed_limit: int | None  # the zone's limit; its signs repeat along the road
    first_sign_z: float
    stop_sign_z: float | None
    brightness: float  # global gain of the lighting
    tint: tuple  # per-channel gain
    noise_sigma: float
    extras: dict = field(default_factory=dict)
    segments: tuple = ()  # Segments, by t_start

    def odometry(self, t: float) -> float:
        """Metres the ego has driven by time t."""
        return self.ego_speed * t

    def active_segments(self, t: float) -> list:
        """The segments that exist at time t."""
        return [g for g in self.segments if g.t_start <= t]

    def zones(self, t: float) -> list:
        """(world z of the first sign, limit) of each speed zone known at time t, in order."""
        zones = [(self.first_sign_z, self.speed_limit)]
        return zones + [(g.first_sign_z, g.speed_limit) for g in self.active_segments(t)
                        if g.speed_limit is not None and g.speed_limit != zones[-1][1]]

    def limit_at(self, t: float):
        """The limit in force where the ego is at time t (the first zone's from the start)."""
        s = self.odometry(t)
        zones = self.zones(t)
        return next((limit for z, limit in reversed(zones[1:]) if z <= s), zones[0][1])

    def signs(self, t: float) -> list:
        """(id, distance ahead, limit) of every speed-limit sign within SIGN_RANGE_M at t."""
        s, out = self.odometry(t), []
        zones = self.zones(t)
        for i, (start, limit) in enumerate(zones):
            if limit is None:
                continue
            end = zones[i + 1][0] if i + 1 < len(zones) else math.inf
            for k in range(1000):
                z = start + k * SIGN_SPACING_M
                if z >= end or z - s > SIGN_RANGE_M[1]:
                    break
                if z - s >= SIGN_RANGE_M[0]:
                    out.append((300 + k + 1000 * i, z - s, limit))
        return out

    def pedestrian_x(self, p: Pedestrian, t: float) -> float:
        return p.x0 + p.vx * max(0.0, t - p.t_start)


def sample_scene(seed: int) -> Scene:
    """The scene a seed stands for; the same seed always gives the same scene."""
    rng = np.random.default_rng([seed, 7])
    vehicles = []
    for _ in range(int(rng.choice(6, p=[0.12, 0.2, 0.22, 0.2, 0.14, 0.12]))):
        vehicles.append(Vehicle(
            kind=str(rng.choice(list(VEHICLE_SIZES), p=[0.7, 0.15, 0.15])),
            colour=str(rng.choice(list(COLOURS))),
            lane=int(rng.integers(-1, 2)), z0=float(rng.uniform(7, 70)),
            rel_speed=float(rng.uniform(-2.5, 2.0))))
    pedestrians = []
    for _ in range(int(rng.choice(3, p=[0.4, 0.4, 0.2]))):
        side = float(rng.choice([-1.0, 1.0]))
        crossing = rng.random() < 0.7
        pedestrians.append(Pedestrian(
            world_z=float(rng.uniform(12, 55)), x0=side * float(rng.uniform(6.0, 8.0)),
            vx=-side * float(rng.uniform(1.0, 1.8)) if crossing else 0.0,
            t_start=float(rng.uniform(0, 6))))
    light = None
    if rng.random() < 0.7:
        durations = (float(rng.uniform(3, 6)), 1.5, float(rng.uniform(3, 6)))
        light = TrafficLight(world_z=float(rng.uniform(35, 90)), durations=durations,
                             phase_s=float(rng.uniform(0, sum(durations))))
    speed_limit = int(rng.choice(SPEED_LIMITS)) if rng.random() < 0.75 else None
    stop_sign_z = float(rng.uniform(20, 60)) if light is None and rng.random() < 0.4 else None
    ego_speed = float(rng.uniform(2.0, 6.0))
    segments = tuple(_segment(seed, k, k * SEGMENT_S, ego_speed * k * SEGMENT_S)
                     for k in range(1, SEGMENTS + 1))
    return Scene(
        seed=seed, ego_speed=ego_speed, vehicles=tuple(vehicles),
        pedestrians=tuple(pedestrians), light=light, speed_limit=speed_limit,
        first_sign_z=float(rng.uniform(10, 35)), stop_sign_z=stop_sign_z,
        brightness=float(rng.uniform(0.6, 1.15)),
        tint=tuple(float(v) for v in rng.uniform(0.9, 1.1, 3)),
        noise_sigma=float(rng.uniform(1.0, 7.0)), segments=segments)


def _segment(seed: int, index: int, t_start: float, z_start: float) -> Segment:
    """Segment `index` of a seed's drive: what appears ahead from `t_start` (ego at z_start)."""
    rng = np.random.default_rng([seed, 7, index])
    vehicles = []
    for _ in range(int(rng.choice(4, p=[0.25, 0.35, 0.25, 0.15]))):
        overtaking = rng.random() < 0.35  # from behind, faster than the ego; else ahead
        lane = int(rng.integers(-1, 2))
        if overtaking:
            lane = lane or 1  # never through the ego
            z0, rel = rng.uniform(-12, -4), rng.uniform(1.0, 3.0)
        else:  # the ego closes in on side-lane traffic; its own lane's leader keeps its gap
            z0, rel = rng.uniform(40, 75), rng.uniform(-2.5, 0.5) if lane else rng.uniform(0, 1)
        vehicles.append(Vehicle(
            kind=str(rng.choice(list(VEHICLE_SIZES), p=[0.7, 0.15, 0.15])),
            colour=str(rng.choice(list(COLOURS))), lane=lane, z0=float(z0),
            rel_speed=float(rel)))
    pedestrians = []
    for _ in range(int(rng.choice(3, p=[0.45, 0.4, 0.15]))):
        side = float(rng.choice([-1.0, 1.0]))
        pedestrians.append(Pedestrian(
            world_z=z_start + float(rng.uniform(25, 60)), x0=side * float(rng.uniform(6.0, 8.0)),
            vx=-side * float(rng.uniform(1.0, 1.8)) if rng.random() < 0.7 else 0.0,
            t_start=t_start + float(rng.uniform(0, 6))))
    light = None
    if rng.random() < 0.6:
        durations = (float(rng.uniform(3, 6)), 1.5, float(rng.uniform(3, 6)))
        light = TrafficLight(world_z=z_start + float(rng.uniform(40, 90)), durations=durations,
                             phase_s=float(rng.uniform(0, sum(durations))))
    limit = int(rng.choice(SPEED_LIMITS)) if rng.random() < 0.5 else None
    return Segment(index, t_start, tuple(vehicles), tuple(pedestrians), light, limit,
                   z_start + float(rng.uniform(10, 40)))
