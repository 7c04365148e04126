"""A driving scene's agents, sampled from a seed, and their state at any time (closed form)."""

from __future__ import annotations

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

    def odometry(self, t: float) -> float:
        """Metres the ego has driven by time t."""
        return self.ego_speed * t

    def sign_zs(self, t: float) -> list:
        """Distances ahead of every speed-limit sign at time t."""
        if self.speed_limit is None:
            return []
        s = self.odometry(t)
        return [self.first_sign_z + k * SIGN_SPACING_M - s for k in range(8)]

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
    return Scene(
        seed=seed, ego_speed=float(rng.uniform(2.0, 6.0)), vehicles=tuple(vehicles),
        pedestrians=tuple(pedestrians), light=light, speed_limit=speed_limit,
        first_sign_z=float(rng.uniform(10, 35)), stop_sign_z=stop_sign_z,
        brightness=float(rng.uniform(0.6, 1.15)),
        tint=tuple(float(v) for v in rng.uniform(0.9, 1.1, 3)),
        noise_sigma=float(rng.uniform(1.0, 7.0)))
