"""Bring up spotvlm_ros: image source, context fuser, cloud bridge, edge node, and the local cloud.

ros2 launch spotvlm_ros spotvlm.launch.py                      # the sample bag, local cloud
ros2 launch spotvlm_ros spotvlm.launch.py camera:=/front/image_raw image_transport:=compressed
ros2 launch spotvlm_ros spotvlm.launch.py cloud:=http://gpu-host:8000/v1 bag:=/data/drive
Where launch_ros is not installed (the pip-only set-up), `spotvlm run` starts the same nodes.
What starts for which arguments is spotvlm_ros.launch_plan.plan (tested without launch_ros).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import ExecutableInPackage, FindPackageShare

PACKAGE = 'spotvlm_ros'
ARGUMENTS = {
    'params_file': ('', 'parameters of all nodes (default: the installed config/spotvlm.yaml)'),
    'namespace': ('', 'e.g. one per camera'),
    'cloud': ('local', 'local (start the local cloud server with the trained cloud model), '
                       'none (edge only), or the URL of an OpenAI-compatible endpoint'),
    'camera': ('', "a camera driver's image topic; empty: image_source plays bag:="),
    'bag': ('', 'bag for image_source (default: the installed sample bag)'),
    'image_transport': ('raw', 'raw (sensor_msgs/Image) or compressed (CompressedImage)'),
    'use_source': ('true', 'start image_source (false: something else publishes image)'),
    'trace': ('', "latency trace of the local cloud server (e.g. lognormal); empty: none"),
}


def _processes(context):
    from spotvlm_ros.launch_plan import plan

    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    share = FindPackageShare(PACKAGE).perform(context)
    params_file = value['params_file'] or f'{share}/config/spotvlm.yaml'
    bag = value['bag'] or f'{share}/bags/sample_scene'
    actions = []
    for proc in plan(cloud=value['cloud'], bag=bag, camera=value['camera'],
                     image_transport=value['image_transport'],
                     use_source=value['use_source'].lower() in ('true', '1', 'yes'),
                     trace=value['trace']):
        if proc.is_node:
            actions.append(Node(
                package=PACKAGE, executable=proc.executable, name=proc.executable,
                namespace=value['namespace'], parameters=[params_file, proc.params],
                remappings=proc.remappings, output='screen', emulate_tty=True))
        else:
            actions.append(ExecuteProcess(
                cmd=[ExecutableInPackage(proc.executable, PACKAGE)] + proc.arguments,
                name=proc.executable, output='screen', emulate_tty=True))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_processes)])
