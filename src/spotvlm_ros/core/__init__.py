"""The method, without ROS: the nodes and the offline evaluator run this very code.

- types: plain data shared by everyone (Region, HistoryTurn, FocusPlan, CloudAnswer).
- context: late cloud answers become the edge model's history turns (context replacement).
- compression: cloud text sanitised as data and compressed to a token budget.
- focus: cloud regions mapped to the current frame and a token-budgeted view plan
  (built on regions, flow, visual_tokens and images).
- keyframes: which frames go to the cloud, with a circuit breaker.
- traces: cloud latency traces, loaded from CSV or generated from a seed.
"""
