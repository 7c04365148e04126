"""spotvlm_ros: an ament_python package whose Python code lives under src/."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'spotvlm_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    description='Real-time cloud-edge VLM answers for ROS 2 by Context Transfer (SpotVLM).',
    license='Apache-2.0',
    python_requires='>=3.10',
    package_dir={'': 'src'},
    packages=find_packages('src', include=[PACKAGE, f'{PACKAGE}.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml') + glob('config/*.xml')),
        # The trained default models and the sample bag, found through the ament index
        # (package://spotvlm_ros/models/spotvlm-edge in config/spotvlm.yaml).
        *[(f'share/{PACKAGE}/{folder}', glob(f'{folder}/*'))
          for folder in ('models/spotvlm-edge', 'models/spotvlm-cloud', 'bags/sample_scene')],
        (f'share/{PACKAGE}/models', ['models/calibration.json']),  # auto's table
    ],
    # rclpy, the message packages and launch_ros come from ROS 2 (apt, or the ros-jazzy-*
    # wheels that scripts/setup.sh installs): they are not declared here.
    install_requires=[
        'numpy',
        'opencv-python-headless',
        'pyyaml',
        'pillow',
        'torch',
        'torchvision',
        'transformers>=4.50',
        'safetensors',
        'tokenizers',
        'onnx',
        'onnxruntime',
        'onnxscript',
        'aiohttp',
        'rosbags>=0.10',
        'matplotlib',
        'tqdm',
    ],
    extras_require={'test': ['pytest', 'pytest-timeout', 'hypothesis']},
    zip_safe=True,
    entry_points={
        'console_scripts': [
            'spotvlm = spotvlm_ros.cli:main',
            'image_source = spotvlm_ros.nodes.image_source:main',
            'edge_node = spotvlm_ros.nodes.edge_node:main',
            'cloud_bridge = spotvlm_ros.nodes.cloud_bridge:main',
            'context_fuser = spotvlm_ros.nodes.context_fuser:main',
            'cloud_server = spotvlm_ros.cloud.server:main',
        ],
    },
)
