/** A three.js viewer: orbit and zoom, wireframe toggle, vertex and face counts. */
import * as THREE from 'three';
import { type GLTF, GLTFLoader } from 'three/examples/jsm/loaders/GLTFLoader.js';
import { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';

export interface MeshStats {
  vertices: number;
  faces: number;
}

export function countGeometry(root: THREE.Object3D): MeshStats {
  let vertices = 0;
  let faces = 0;
  root.traverse((obj) => {
    const mesh = obj as THREE.Mesh;
    if (!mesh.isMesh || !mesh.geometry) return;
    const geometry = mesh.geometry as THREE.BufferGeometry;
    const position = geometry.getAttribute('position');
    if (!position) return;
    vertices += position.count;
    faces += Math.floor((geometry.index ? geometry.index.count : position.count) / 3);
  });
  return { vertices, faces };
}

export class Viewer {
  readonly renderer: THREE.WebGLRenderer;
  private readonly scene = new THREE.Scene();
  private readonly camera = new THREE.PerspectiveCamera(35, 1, 0.01, 100);
  private readonly controls: OrbitControls;
  private model: THREE.Object3D | null = null;
  private wireframe = false;
  private readonly resizeObserver: ResizeObserver;

  constructor(private readonly container: HTMLElement) {
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    this.renderer.domElement.setAttribute('aria-label', '3D view of the asset: drag to orbit, scroll to zoom');
    this.renderer.domElement.tabIndex = 0;
    container.appendChild(this.renderer.domElement);
    this.scene.background = new THREE.Color(0xeef0f3);
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x666677, 2.2));
    const sun = new THREE.DirectionalLight(0xffffff, 1.6);
    sun.position.set(3, 5, 4);
    this.scene.add(sun);
    const grid = new THREE.GridHelper(4, 16, 0xb8bcc4, 0xd4d7dd);
    this.scene.add(grid);
    this.camera.position.set(2.2, 1.6, 2.8);
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.enableDamping = true;
    this.controls.listenToKeyEvents(this.renderer.domElement);
    this.controls.addEventListener('change', () => this.render());
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(container);
    this.resize();
    const loop = () => {
      if (this.controls.update()) this.render();
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  resize(): void {
    const width = Math.max(1, this.container.clientWidth);
    const height = Math.max(1, this.container.clientHeight);
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
    this.render();
  }

  render(): void {
    this.renderer.render(this.scene, this.camera);
  }

  async load(url: string): Promise<MeshStats> {
    return this.show(await new GLTFLoader().loadAsync(url));
  }

  /** A GLB already fetched (with the API key: see files.ts). */
  async loadData(data: ArrayBuffer): Promise<MeshStats> {
    return this.show(await new GLTFLoader().parseAsync(data, ''));
  }

  private show(gltf: GLTF): MeshStats {
    this.clear();
    this.model = gltf.scene;
    this.scene.add(gltf.scene);
    this.applyWireframe();
    this.frame(gltf.scene);
    this.render();
    return countGeometry(gltf.scene);
  }

  clear(): void {
    if (!this.model) return;
    this.scene.remove(this.model);
    this.model.traverse((obj) => {
      const mesh = obj as THREE.Mesh;
      if (mesh.isMesh) {
        mesh.geometry?.dispose();
        const materials = Array.isArray(mesh.material) ? mesh.material : [mesh.material];
        materials.forEach((m) => m?.dispose());
      }
    });
    this.model = null;
    this.render();
  }

  setWireframe(on: boolean): void {
    this.wireframe = on;
    this.applyWireframe();
    this.render();
  }

  private applyWireframe(): void {
    this.model?.traverse((obj) => {
      const mesh = obj as THREE.Mesh;
      if (!mesh.isMesh) return;
      const materials = Array.isArray(mesh.material) ? mesh.material : [mesh.material];
      for (const m of materials) {
        if (m && 'wireframe' in m) (m as THREE.MeshStandardMaterial).wireframe = this.wireframe;
      }
    });
  }

  /** Point the camera at the model from the front-right, far enough to see all of it. */
  private frame(object: THREE.Object3D): void {
    const box = new THREE.Box3().setFromObject(object);
    if (box.isEmpty()) return;
    const size = box.getSize(new THREE.Vector3());
    const centre = box.getCenter(new THREE.Vector3());
    const radius = Math.max(size.x, size.y, size.z) * 0.5 * Math.sqrt(3);
    const distance = radius / Math.sin(THREE.MathUtils.degToRad(this.camera.fov / 2)) * 1.1;
    const direction = new THREE.Vector3(0.55, 0.45, 0.7).normalize();
    this.camera.position.copy(centre).addScaledVector(direction, distance);
    this.camera.near = distance / 100;
    this.camera.far = distance * 100;
    this.camera.updateProjectionMatrix();
    this.controls.target.copy(centre);
    this.controls.update();
  }
}
