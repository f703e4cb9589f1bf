"""Dominant-hue vectors and hue grouping: the step-by-step example of the plugin docs.

`compute_vectors` (hook `vector`) stores a 1-D vector per image: its most
common hue (0-255, Pillow's HSV). `compute_clusters` (hook `group`) sorts the
selected images by that hue and cuts them into `nb_clusters` groups of equal
size, named after their hue range.
"""

import numpy as np
from PIL import Image

from fluxgym_coach.plugins import (ActionContext, ActionResult, APlugin, Group, Instance, Notif, NotifType,
                                   Project, Vector)


class HuePlugin(APlugin):
    """Groups images by their dominant hue."""

    def __init__(self, project: Project, plugin_path: str, name: str):
        """
        Called when the dataset's plugins are loaded.
        :param project: the project
        :param plugin_path: the folder of the plugin
        :param name: the plugin's unique name
        """
        # do not forget the parent constructor
        super().__init__(name=name, project=project, plugin_path=plugin_path)
        self.add_action_easy(self.compute_vectors, ['vector'])
        self.add_action_easy(self.compute_clusters, ['group'])

    async def _start(self):
        if len(self.vector_types) == 0:
            vec_type = self.project.create_vector_type({"model": "dominant_hue"})
            await self.project.add_vector_type(vec_type)

    @staticmethod
    def compute_hue_vector(path: str):
        img = Image.open(path)
        img = img.convert('RGB')
        img_hsv = img.convert('HSV')
        # HSV data as a numpy array
        hsv_array = np.array(img_hsv)
        # the hue channel (first channel in HSV)
        hue_channel = hsv_array[:, :, 0]
        hue_flat = hue_channel.flatten()
        # the most common hue value
        counts = np.bincount(hue_flat)
        dominant_hue = np.argmax(counts)
        # a 1-dimensional vector, float32 like the store
        return np.array(int(dominant_hue), dtype='float32')

    async def compute_vectors(self, ctx: ActionContext):
        """Compute the dominant-hue vector of the selected images."""
        # the instances from the database
        instances = await self.project.get_instances(ids=ctx.instance_ids)
        # one instance per sha1
        unique = list({i.sha1: i for i in instances}.values())
        # our vector type id
        type_id = self.vector_types[0].id

        for instance in unique:
            # compute in the executor so the event loop is not blocked
            hue_vector = await self.project.run_async(self.compute_hue_vector, instance.url)
            vector = Vector(type_id=type_id, sha1=instance.sha1, data=hue_vector)
            await self.project.add_vector(vector)

        notif = Notif(type=NotifType.INFO, name='compute_vectors', message='All vectors were computed')
        # always return an ActionResult
        return ActionResult(notifs=[notif])

    @staticmethod
    def group_instances_by_hue(instances: list[Instance], sha1_to_hue: dict[str, int], num_groups: int):
        """Sort the instances by hue and cut them into groups of equal size."""
        id_array = np.array([i.id for i in instances])
        hue_array = np.array([sha1_to_hue[i.sha1] for i in instances])
        sorted_indices = np.argsort(hue_array, kind='stable')
        sorted_ids = id_array[sorted_indices]
        sorted_hue = hue_array[sorted_indices]
        id_groups = np.array_split(sorted_ids, num_groups)
        hue_groups = np.array_split(sorted_hue, num_groups)
        return id_groups, hue_groups

    async def compute_clusters(self, ctx: ActionContext, nb_clusters: int = 3):
        """Cut the selected images into groups of similar dominant hue.
        @nb_clusters: number of groups
        """
        instances = await self.project.get_instances(ids=ctx.instance_ids)
        vectors = await self.project.get_vectors(self.vector_types[0].id)
        sha1_to_hue = {v.sha1: v.data.tolist()[0] for v in vectors}
        missing = [i for i in instances if i.sha1 not in sha1_to_hue]
        instances = [i for i in instances if i.sha1 in sha1_to_hue]
        id_groups, hue_groups = self.group_instances_by_hue(instances, sha1_to_hue, nb_clusters)

        groups = []
        for id_group, hue_group in zip(id_groups, hue_groups):
            if len(id_group) == 0:
                continue
            min_hue = hue_group.min()
            max_hue = hue_group.max()
            groups.append(Group(ids=id_group.tolist(), name=f"Hue group: {min_hue:g}-{max_hue:g}"))
        notifs = []
        if missing:
            notifs.append(Notif(NotifType.WARNING, 'compute_clusters',
                                f'{len(missing)} images have no hue vector yet: run compute_vectors first'))
        return ActionResult(groups=groups, notifs=notifs or None)
