from setuptools import find_packages, setup

setup(
    name="pyro-vim",
    version="0.1.0",
    description="VIM: Variational Independent Modules for video prediction, in Pyro",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["pyro_vim", "pyro_vim.*"]),
    # the shipped checkpoints: pyro_vim.pretrained("random_walk")
    package_data={"pyro_vim.pretrained": ["manifest.json", "*.pt"]},
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "pyro-ppl>=1.9",
        "numpy",
        "matplotlib",
        "tqdm",
    ],
    # Pillow (GIFs) comes with matplotlib.
    extras_require={"test": ["pytest>=7"], "tb": ["tensorboard"]},
)
