exports = async function () {
  const tasks = context.services.get("mongodb-atlas").db("tracker").collection("tasks");
  return tasks.count({ done: false });
};
