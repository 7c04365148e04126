"""Bring up spotvlm_ros: image source, context fuser, cloud bridge and edge node.

ros2 launch spotvlm_ros spotvlm.launch.py bag:=/path/to/bag namespace:=front use_cloud:=true
Where launch_ros is not installed (the pip-only set-up), `spotvlm run` starts the same nodes.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    params_file = LaunchConfiguration('params_file')
    namespace = LaunchConfiguration('namespace')
    arguments = [
        DeclareLaunchArgument(
            'params_file', description='parameters of all nodes',
            default_value=PathJoinSubstitution(
                [FindPackageShare('spotvlm_ros'), 'config', 'spotvlm.yaml'])),
        DeclareLaunchArgument('namespace', default_value='', description='e.g. one per camera'),
        DeclareLaunchArgument('use_cloud', default_value='true',
                              description='start the cloud bridge'),
        DeclareLaunchArgument('use_source', default_value='true',
                              description='start image_source (false: a camera driver publishes image)'),
        DeclareLaunchArgument('bag', default_value='', description='bag for image_source'),
    ]

    def node(name, condition=None, extra=None):
        return Node(package='spotvlm_ros', executable=name, name=name, namespace=namespace,
                    parameters=[params_file] + ([extra] if extra else []), output='screen',
                    emulate_tty=True, condition=condition)

    return LaunchDescription(arguments + [
        node('context_fuser'),
        node('edge_node'),
        node('cloud_bridge', IfCondition(LaunchConfiguration('use_cloud'))),
        node('image_source', IfCondition(LaunchConfiguration('use_source')),
             {'source.path': LaunchConfiguration('bag')}),
    ])
